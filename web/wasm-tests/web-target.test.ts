// The browsers' bindings (wasm-bindgen --target web, target/wasm/web/) work as the Node ones do:
// instantiated from the module's bytes (a page fetches them), the same answers.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ValetCore, type Bindings, type SpecContext } from '../src/core/valet-core';
import { ROOT, loadCore, readJson } from './load';

interface WebBindings extends Bindings {
  initSync(options: { module: BufferSource }): unknown;
}

describe('the web target', () => {
  it('gives the Node target’s answers', async () => {
    const dir = `${ROOT}target/wasm/web/`;
    const web = (await import(/* @vite-ignore */ `${dir}valet_wasm.js`)) as WebBindings;
    web.initSync({ module: readFileSync(`${dir}valet_wasm_bg.wasm`) });
    const browser = new ValetCore(web);
    const node = loadCore();
    const v = readJson<{ sessions: Record<string, { packed: `0x${string}`; id: string }> }>(
      'contracts/test/vectors/sessions.json',
      'the shared vectors',
    );
    for (const s of Object.values(v.sessions)) expect(browser.sessionId(s.packed)).toBe(s.id);
    const spec = browser.demoSpecs().vote;
    const context: SpecContext = {
      now: 1_800_000_000,
      sessionKey: '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf',
      names: { ValetDAO: '0x5FbDB2315678afecb367f032d93F642f64180aa3' },
    };
    expect(browser.parseSpec(spec, context)).toEqual(node.parseSpec(spec, context));
  });
});
