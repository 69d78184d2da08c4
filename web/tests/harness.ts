// Harness for the real-browser test: the `valet up` service, Debian's Chromium driven by
// playwright-core, an injected EIP-1193 wallet backed by a local viem key, and small waiting helpers.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { type Address, type Hex, type TypedDataDefinition, createWalletClient, defineChain, http, isAddressEqual, isHex, toHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const e2eDir = join(repoRoot, 'target', 'web-e2e');

/** A fresh directory under target/web-e2e/. */
export function freshDir(prefix: string): string {
  mkdirSync(e2eDir, { recursive: true });
  return mkdtempSync(join(e2eDir, `${prefix}-`));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/**
 * Polls `read` until `ok` accepts its value and returns that value. On timeout it throws,
 * naming what it waited for and the last value seen (or the last error `read` threw).
 */
export async function until<T>(
  read: () => T | Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let seen = 'nothing yet';
  for (;;) {
    try {
      const value = await read();
      if (ok(value)) return value;
      seen = value === undefined ? 'undefined' : JSON.stringify(value);
    } catch (error) {
      seen = `error: ${errorMessage(error)}`;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${seen}`);
    }
    await sleep(100);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function tail(text: string, lines: number): string {
  return text.split('\n').slice(-lines).join('\n');
}

// ---------------------------------------------------------------------------------------------
// The service

export interface ValetInfo {
  url: string;
  rpc_url: string;
  chain_id: number;
  contracts: { ValetNFT: Address; ValetToken: Address; ValetDAO: Address };
  validator: Address;
  factory: Address;
  /** Where the service keeps the token that may register apps and set their sponsorship. */
  admin_token_file: string;
  pid: number;
}

export interface StopReport {
  /** Exited on SIGTERM within the grace period and left no child process behind. */
  clean: boolean;
  exit: string;
  /** Child processes (anvil, …) still alive after the service exited; they were SIGKILLed. */
  leftovers: number[];
}

export interface ValetService {
  info: ValetInfo;
  dataDir: string;
  logPath: string;
  logTail(lines?: number): string;
  stop(): Promise<StopReport>;
}

export const valetBin = process.env.VALET_BIN ?? join(repoRoot, 'target', 'debug', 'valet');

/**
 * Starts `valet up --json --port 0` on a fresh data dir and waits for its one JSON line.
 * `web` is the directory of the built dApp it should serve (omit to start the API alone);
 * `bundler: 'alto'` runs the devnet's Alto too (what keys kept in the browser send through).
 */
export async function startValet(
  options: { web?: string; bin?: string; startupTimeoutMs?: number; bundler?: 'alto' } = {},
): Promise<ValetService> {
  const bin = options.bin ?? valetBin;
  if (!existsSync(bin)) {
    throw new Error(`no valet binary at ${bin}: run \`cargo build -p valet-cli --locked\` or set VALET_BIN`);
  }
  const dataDir = freshDir('service');
  const logPath = join(dataDir, 'valet.log');
  const logTail = (lines = 40) => (existsSync(logPath) ? tail(readFileSync(logPath, 'utf8'), lines) : '');
  const args = ['up', '--json', '--port', '0', '--data-dir', dataDir];
  if (options.web !== undefined) args.push('--web', options.web);
  if (options.bundler !== undefined) args.push('--bundler', options.bundler);

  const logFd = openSync(logPath, 'a');
  const child = spawn(bin, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', logFd] });
  closeSync(logFd);
  const exited = exitOf(child);
  stopOnExit(child, exited);

  let info: ValetInfo;
  try {
    info = await firstJsonLine(child, exited, options.startupTimeoutMs ?? 180_000);
  } catch (error) {
    await stopProcess(child, exited);
    throw new Error(`valet up failed to start: ${errorMessage(error)}\n--- ${logPath} (tail) ---\n${logTail()}`);
  }
  return { info, dataDir, logPath, logTail, stop: () => stopProcess(child, exited) };
}

// If the test process ends without stopping a service (a failed run whose worker vitest
// terminates, Ctrl-C), SIGTERM the service anyway: it would otherwise live on, with its anvil.
const running = new Set<ChildProcess>();
function terminateRunning(): void {
  for (const child of running) if (child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
  running.clear();
}
process.once('exit', terminateRunning);
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    terminateRunning();
    process.kill(process.pid, signal); // the default action, now that this listener is gone
  });
}

function stopOnExit(child: ChildProcess, exited: Promise<string>): void {
  running.add(child);
  void exited.then(() => running.delete(child));
}

function exitOf(child: ChildProcess): Promise<string> {
  return new Promise((done) => {
    child.once('exit', (code, signal) => done(signal ? `signal ${signal}` : `exit code ${code}`));
    child.once('error', (error) => done(`spawn error: ${error.message}`));
  });
}

async function firstJsonLine(child: ChildProcess, exited: Promise<string>, timeoutMs: number): Promise<ValetInfo> {
  if (!child.stdout) throw new Error('no stdout pipe');
  const lines = createInterface({ input: child.stdout });
  const line = new Promise<string>((done) => lines.once('line', done));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`no JSON line within ${timeoutMs / 1000} s`)), timeoutMs);
  });
  try {
    const first = await Promise.race([
      line,
      timeout,
      exited.then((how) => Promise.reject(new Error(`exited before serving (${how})`))),
    ]);
    return JSON.parse(first) as ValetInfo;
  } finally {
    clearTimeout(timer);
  }
}

/** SIGTERM by PID, SIGKILL after a grace period; then any of its children still alive. */
async function stopProcess(child: ChildProcess, exited: Promise<string>, graceMs = 10_000): Promise<StopReport> {
  const pid = child.pid;
  if (pid === undefined || !isAlive(pid)) {
    return { clean: false, exit: `had already ended: ${await exited}`, leftovers: [] };
  }
  const children = descendantPids(pid);
  process.kill(pid, 'SIGTERM');
  const inTime = (await Promise.race([exited, sleep(graceMs)])) !== undefined;
  if (!inTime) process.kill(pid, 'SIGKILL');
  const exit = await exited;
  await until(() => children.filter(isAlive), (alive) => alive.length === 0, 3_000, 'children to exit').catch(
    () => undefined,
  );
  const leftovers = children.filter(isAlive);
  for (const leftover of leftovers) process.kill(leftover, 'SIGKILL');
  const how = inTime ? exit : `SIGKILLed after ${graceMs / 1000} s`;
  return { clean: inTime && leftovers.length === 0, exit: how, leftovers };
}

/** The process's descendants, from /proc (every thread's `children` list: tokio spawns from any thread). */
function descendantPids(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number) => {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let list = '';
      try {
        list = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const child of list.split(/\s+/).filter(Boolean).map(Number)) {
        found.push(child);
        visit(child);
      }
    }
  };
  visit(pid);
  return found;
}

/** Running (a zombie, already dead but not yet reaped, does not count). */
function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The browser

export const chromiumPath = '/usr/bin/chromium';

export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Belt and braces for "nothing but 127.0.0.1": no host name resolves, so nothing inside
  // Chromium can even send a DNS query; the page's own requests are also checked and blocked.
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];

export interface Chromium {
  context: BrowserContext;
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>;
}

/** Headless Debian Chromium on a fresh profile under target/web-e2e/. */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath}: run tools/chromium.sh`);
  const profile = freshDir('chromium-profile');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    viewport: { width: 1280, height: 900 },
    serviceWorkers: 'block',
  });
  context.setDefaultTimeout(30_000);
  const close = async () => {
    await context.close(); // returns once the browser process has exited: the profile is free
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/** http(s)/ws(s) to 127.0.0.1, or a scheme that never leaves the browser. */
export function isLoopbackUrl(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const { protocol, hostname } = new URL(url);
  return ['data:', 'blob:', 'about:'].includes(protocol) || hostname === '127.0.0.1';
}

/** What a page did that a test should know about; `problems()` lists what should fail it. */
export class PageWatch {
  readonly console: string[] = [];
  readonly errors: string[] = [];
  readonly offLoopback: string[] = [];
  /** 4xx answers to the page's own fetch/XHR calls: expected (refusals), listed for debugging. */
  readonly refusals: string[] = [];

  constructor(page: Page) {
    page.on('console', (message) => {
      const line = `[${message.type()}] ${message.text()}`;
      this.console.push(line);
      // Chromium logs every HTTP error answer as "Failed to load resource"; those are judged
      // from the responses below, so an expected refusal (a 4xx to fetch) is not an error.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        this.errors.push(`console.error: ${message.text()}`);
      }
    });
    page.on('pageerror', (error) => this.errors.push(`uncaught: ${error.stack ?? error.message}`));
    page.on('request', (request) => {
      if (!isLoopbackUrl(request.url())) this.offLoopback.push(`${request.method()} ${request.url()}`);
    });
    page.on('websocket', (socket) => {
      if (!isLoopbackUrl(socket.url())) this.offLoopback.push(`WebSocket ${socket.url()}`);
    });
    page.on('response', (response) => {
      const status = response.status();
      if (status < 400) return;
      const request = response.request();
      const line = `${request.method()} ${response.url()} → ${status}`;
      const ownCall = ['fetch', 'xhr'].includes(request.resourceType());
      if (ownCall && status < 500) this.refusals.push(line);
      else this.errors.push(`HTTP ${line}`);
    });
    page.on('requestfailed', (request) => {
      const reason = request.failure()?.errorText ?? 'unknown';
      // Off-loopback ones are listed above; a page may cancel its own calls (ERR_ABORTED).
      if (isLoopbackUrl(request.url()) && reason !== 'net::ERR_ABORTED') {
        this.errors.push(`request failed: ${request.method()} ${request.url()} (${reason})`);
      }
    });
  }

  problems(): string[] {
    return [...this.errors, ...this.offLoopback.map((line) => `off-loopback request: ${line}`)];
  }
}

/** Aborts every request from the context that is not to 127.0.0.1 (PageWatch records it). */
export async function blockOffLoopback(context: BrowserContext): Promise<void> {
  await context.route((url) => !isLoopbackUrl(url.href), (route) => route.abort('blockedbyclient'));
}

// ---------------------------------------------------------------------------------------------
// The injected wallet

export interface WalletRequest {
  method: string;
  params: unknown;
  at: number;
  error?: string;
}

/** Requests that would make a real wallet prompt its user to sign or send. */
export const signingMethods = new Set([
  'eth_sign',
  'personal_sign',
  'eth_signTypedData',
  'eth_signTypedData_v3',
  'eth_signTypedData_v4',
  'eth_signTransaction',
  'eth_sendTransaction',
  'wallet_sendCalls',
  'wallet_signAuthorization',
]);

class ProviderRpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type Reply = { result: unknown } | { error: { code: number; message: string } };

const bindingName = '__valetTestWallet';

export interface TestWalletOptions {
  /**
   * Signs EIP-7702 authorizations (`wallet_signAuthorization`, with viem's `signAuthorization`)
   * and says so in `wallet_getCapabilities` (the protocol is described in web/src/wallet.ts).
   * Default true. False: a wallet that knows EIP-5792 but not EIP-7702 — its capabilities list
   * nothing for the chain and `wallet_signAuthorization` is unsupported (4200).
   */
  eip7702?: boolean;
  /**
   * The node it sends transactions through (`eth_sendTransaction`, signed with its key; its
   * account pays the fee). Without it, `eth_sendTransaction` is unsupported (4200).
   */
  rpcUrl?: string;
}

/**
 * An EIP-1193 wallet for the page: `window.ethereum` forwards each request to this object in
 * Node, which signs with a fresh local key. Like a real wallet, it reveals its account
 * (eth_accounts) only after the page asked for it (eth_requestAccounts).
 */
export class TestWallet {
  /** The key it signs with; `switchAccount` replaces it, as a user picking another account would. */
  account = privateKeyToAccount(generatePrivateKey());
  readonly requests: WalletRequest[] = [];
  private connected = false;

  /** Whether it signs EIP-7702 authorizations (and advertises it). */
  readonly eip7702: boolean;

  /** The chain it says it is on; `switchChain` changes it. */
  constructor(
    public chainId: number,
    options: TestWalletOptions = {},
  ) {
    this.eip7702 = options.eip7702 ?? true;
    this.rpcUrl = options.rpcUrl;
  }

  /** Where `eth_sendTransaction` goes, if anywhere. */
  readonly rpcUrl: string | undefined;

  /** Another account, as a user switching accounts in the wallet; tells `page` (accountsChanged). */
  async switchAccount(page: Page): Promise<Address> {
    this.account = privateKeyToAccount(generatePrivateKey());
    await this.emit(page, 'accountsChanged', [this.address]);
    return this.address;
  }

  /** Another network, as a user switching in the wallet; tells `page` (chainChanged). */
  async switchChain(page: Page, chainId: number): Promise<void> {
    this.chainId = chainId;
    await this.emit(page, 'chainChanged', toHex(chainId));
  }

  /** Emits an EIP-1193 event to the listeners the page registered with `ethereum.on`. */
  async emit(page: Page, event: string, payload: unknown): Promise<void> {
    await page.evaluate(
      ([event, payload]) => (globalThis as unknown as Record<string, (e: string, p: unknown) => void>).__valetWalletEmit?.(event, payload),
      [event, payload] as const,
    );
  }

  get address(): Address {
    return this.account.address;
  }

  /** How many requests of `method` (or of any signing kind, for 'signing') were made. */
  count(method: string): number {
    const matches = (m: string) => (method === 'signing' ? signingMethods.has(m) : m === method);
    return this.requests.filter((request) => matches(request.method)).length;
  }

  /** Puts `window.ethereum` into every page and frame of the context, before the page's scripts. */
  async install(context: BrowserContext): Promise<void> {
    await context.exposeFunction(bindingName, (method: string, params: unknown) => this.answer(method, params));
    await context.addInitScript(injectProvider, bindingName);
  }

  private async answer(method: string, params: unknown): Promise<Reply> {
    const request: WalletRequest = { method, params, at: Date.now() };
    this.requests.push(request);
    try {
      return { result: await this.handle(method, Array.isArray(params) ? params : []) };
    } catch (error) {
      const code = error instanceof ProviderRpcError ? error.code : -32603;
      request.error = `${code} ${errorMessage(error)}`;
      return { error: { code, message: errorMessage(error) } };
    }
  }

  private declineNext = false;

  /** The next signing request is declined, as a user pressing "Reject" would (EIP-1193 4001). */
  declineNextSignature(): void {
    this.declineNext = true;
  }

  private async handle(method: string, params: unknown[]): Promise<unknown> {
    if (this.declineNext && signingMethods.has(method)) {
      this.declineNext = false;
      throw new ProviderRpcError(4001, 'User rejected the request.');
    }
    switch (method) {
      case 'eth_requestAccounts':
        this.connected = true;
        return [this.address];
      case 'eth_accounts':
        return this.connected ? [this.address] : [];
      case 'eth_chainId':
        return toHex(this.chainId);
      case 'eth_signTypedData_v4':
        return this.signTypedData(params);
      case 'personal_sign':
        return this.personalSign(params);
      case 'wallet_getCapabilities':
        return this.capabilities(params);
      case 'wallet_signAuthorization':
        if (!this.eip7702) break;
        return this.signAuthorization(params);
      case 'eth_sendTransaction':
        if (!this.rpcUrl) break;
        return this.sendTransaction(params);
    }
    throw new ProviderRpcError(4200, `The test wallet does not support ${method}`);
  }

  /** EIP-5792: by chain id (hex), what the wallet can do there. */
  private capabilities([from, chains]: unknown[]): Record<Hex, Record<string, unknown>> {
    this.expectOwnAddress(from);
    const chain = toHex(this.chainId);
    if (Array.isArray(chains) && !chains.some((c) => typeof c === 'string' && isHex(c) && BigInt(c) === BigInt(this.chainId))) {
      return {};
    }
    return { [chain]: this.eip7702 ? { signAuthorization: { supported: true } } : {} };
  }

  /**
   * `[{ chainId, address, nonce }]` (hex quantities) → `{ chainId, address, nonce, r, s, yParity }`:
   * viem's SignedAuthorization as JSON-RPC carries it (quantities in hex).
   */
  private async signAuthorization([request]: unknown[]): Promise<Record<string, unknown>> {
    const { chainId, address, nonce } = (request ?? {}) as Record<string, unknown>;
    const quantity = (value: unknown, name: string): number => {
      if (typeof value !== 'string' || !isHex(value)) throw new ProviderRpcError(-32602, `wallet_signAuthorization: ${name} must be a hex quantity`);
      return Number(BigInt(value));
    };
    if (typeof address !== 'string' || !isHex(address) || address.length !== 42) {
      throw new ProviderRpcError(-32602, 'wallet_signAuthorization: address must be an address');
    }
    const chain = quantity(chainId, 'chainId');
    if (chain !== this.chainId) throw new ProviderRpcError(4901, `The test wallet is on chain ${this.chainId}, not ${chain}`);
    const signed = await this.account.signAuthorization({ chainId: chain, address, nonce: quantity(nonce, 'nonce') });
    return {
      chainId: toHex(signed.chainId),
      address: signed.address,
      nonce: toHex(signed.nonce),
      r: signed.r,
      s: signed.s,
      yParity: toHex(signed.yParity ?? 0),
    };
  }

  /** `[{ from, to, data?, value? }]` → the transaction's hash, sent through `rpcUrl`. */
  private sendTransaction([request]: unknown[]): Promise<Hex> {
    const { from, to, data, value } = (request ?? {}) as Record<string, unknown>;
    this.expectOwnAddress(from);
    if (typeof to !== 'string' || !isHex(to) || to.length !== 42) throw new ProviderRpcError(-32602, 'eth_sendTransaction: to must be an address');
    const url = this.rpcUrl as string;
    const chain = defineChain({
      id: this.chainId,
      name: `chain ${this.chainId}`,
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [url] } },
    });
    const client = createWalletClient({ account: this.account, chain, transport: http(url) });
    return client.sendTransaction({
      to,
      data: typeof data === 'string' && isHex(data) ? data : undefined,
      value: typeof value === 'string' && isHex(value) ? BigInt(value) : undefined,
    });
  }

  private signTypedData([from, json]: unknown[]): Promise<Hex> {
    this.expectOwnAddress(from);
    const typedData = (typeof json === 'string' ? JSON.parse(json) : json) as {
      domain?: Record<string, unknown>;
      types: Record<string, unknown>;
      primaryType: string;
      message: Record<string, unknown>;
    };
    // viem derives the domain's type from `domain`; the JSON form carries it as EIP712Domain.
    const types = { ...typedData.types };
    delete types.EIP712Domain;
    return this.account.signTypedData({
      domain: typedData.domain ?? {},
      types,
      primaryType: typedData.primaryType,
      message: typedData.message,
    } as TypedDataDefinition);
  }

  private personalSign(params: unknown[]): Promise<Hex> {
    // The spec says [message, address]; some callers still send [address, message].
    const [message, from] = isOwnAddress(params[0], this.address) ? [params[1], params[0]] : params;
    this.expectOwnAddress(from);
    if (typeof message !== 'string') throw new ProviderRpcError(-32602, 'personal_sign: message must be a string');
    return this.account.signMessage({ message: isHex(message) ? { raw: message } : message });
  }

  private expectOwnAddress(from: unknown): void {
    if (!isOwnAddress(from, this.address)) {
      throw new ProviderRpcError(4100, `The test wallet holds only ${this.address}, not ${String(from)}`);
    }
  }
}

function isOwnAddress(value: unknown, address: Address): boolean {
  return typeof value === 'string' && isHex(value) && value.length === 42 && isAddressEqual(value, address);
}

/** Runs in the page (serialized by Playwright): so it may use nothing from this module. */
function injectProvider(binding: string): void {
  // Looked up per request: Playwright does not promise to install the binding before this script.
  const forward = (method: string, params: unknown) => {
    const call = (globalThis as unknown as Record<string, (m: string, p: unknown) => Promise<Reply>>)[binding];
    if (!call) throw Object.assign(new Error('The wallet is not reachable'), { code: 4900 });
    return call(method, params);
  };
  const listeners = new Map<string, Set<(payload: unknown) => void>>();
  Object.defineProperty(globalThis, '__valetWalletEmit', {
    value: (event: string, payload: unknown) => {
      for (const listener of listeners.get(event) ?? []) listener(payload);
    },
    configurable: true,
  });
  const provider = {
    isMetaMask: false,
    async request(args: { method: string; params?: unknown }): Promise<unknown> {
      if (!args || typeof args.method !== 'string') {
        throw Object.assign(new Error('Invalid request: expected { method, params }'), { code: -32600 });
      }
      const reply = await forward(args.method, args.params ?? []);
      if ('error' in reply) throw Object.assign(new Error(reply.error.message), reply.error);
      return reply.result;
    },
    on(event: string, listener: (payload: unknown) => void) {
      if (!listeners.has(event)) listeners.set(event, new Set());
      listeners.get(event)!.add(listener);
      return provider;
    },
    removeListener(event: string, listener: (payload: unknown) => void) {
      listeners.get(event)?.delete(listener);
      return provider;
    },
  };
  Object.defineProperty(globalThis, 'ethereum', { value: provider, configurable: true, enumerable: true });
}
