// A tiny element builder: text always goes in as text (never parsed as HTML), so nothing the
// service or a contract says can inject markup.

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'testid') {
      el.dataset.testid = String(value);
    } else if (name === 'value' && (el instanceof HTMLInputElement || el instanceof HTMLSelectElement)) {
      el.value = String(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/// Replaces `section`'s content, keeping keyboard focus (and the caret) on the element with the
/// same data-testid or id, so re-rendering never throws a keyboard user back to the top.
export function replace(section: HTMLElement, ...children: (Child | Child[])[]): void {
  const active = document.activeElement as HTMLElement | null;
  const inside = active && section.contains(active);
  const key = inside ? (active.dataset.testid ?? (active.id || null)) : null;
  const caret = inside && active instanceof HTMLInputElement ? active.selectionStart : null;
  section.replaceChildren();
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    section.append(child instanceof Node ? child : String(child));
  }
  if (key) {
    const again =
      section.querySelector<HTMLElement>(`[data-testid="${CSS.escape(key)}"]`) ??
      section.querySelector<HTMLElement>(`#${CSS.escape(key)}`);
    if (again) {
      again.focus();
      if (again instanceof HTMLInputElement && caret !== null) {
        try {
          again.setSelectionRange(caret, caret);
        } catch {
          // Number inputs have no caret.
        }
      }
    }
  }
}
