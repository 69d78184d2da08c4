// A local devnet for the tests in this folder: `valet devnet --bundler alto --json` (anvil with
// Valet deployed, and the Alto bundler, both on 127.0.0.1), stopped by its PID however the run
// ends.

import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Address, Hex } from 'viem';
import { ROOT } from './load';

/// What `valet devnet --json` prints (the parts used here).
export interface DevnetInfo {
  rpc_url: string;
  bundler_url: string;
  chain_id: number;
  entry_point: Address;
  factory: Address;
  validator: Address;
  names: Record<string, Address>;
  dev_keys: Hex[];
}

export interface Devnet {
  info: DevnetInfo;
  /// SIGTERM by PID (SIGKILL after 15 s); resolves once it has exited.
  stop(): Promise<string>;
}

const BIN = `${ROOT}target/debug/valet`;
const alive = new Set<number>();
process.once('exit', () => {
  for (const pid of alive) process.kill(pid, 'SIGTERM');
});

/// Starts a devnet with Alto in a fresh data directory under target/tmp/.
export async function startDevnet(timeoutMs = 120_000): Promise<Devnet> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: cargo build --locked -p valet-cli`);
  mkdirSync(`${ROOT}target/tmp`, { recursive: true });
  const dir = mkdtempSync(join(`${ROOT}target/tmp`, 'browser-keys-'));
  const logPath = join(dir, 'stderr.log');
  const log = openSync(logPath, 'w');
  const child: ChildProcess = spawn(BIN, ['devnet', '--bundler', 'alto', '--json', '--data-dir', dir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', log],
  });
  closeSync(log);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${BIN} did not start`);
  alive.add(pid);
  const exited = new Promise<string>((done) => {
    child.once('exit', (code, signal) => {
      alive.delete(pid);
      done(signal ? `signal ${signal}` : `exit code ${code}`);
    });
  });
  const stop = async (): Promise<string> => {
    if (alive.has(pid)) {
      process.kill(pid, 'SIGTERM');
      const timer = setTimeout(() => alive.has(pid) && process.kill(pid, 'SIGKILL'), 15_000);
      const how = await exited;
      clearTimeout(timer);
      return how;
    }
    return exited;
  };
  const lines = createInterface({ input: child.stdout! });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const line = await Promise.race([
      new Promise<string>((done) => lines.once('line', done)),
      new Promise<never>((_, fail) => {
        timer = setTimeout(() => fail(new Error(`no JSON within ${timeoutMs / 1000} s`)), timeoutMs);
      }),
      exited.then((how) => Promise.reject(new Error(`the devnet exited (${how})`))),
    ]);
    const doc = JSON.parse(line) as { devnet: DevnetInfo };
    return { info: doc.devnet, stop };
  } catch (error) {
    await stop();
    const tail = readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n');
    throw new Error(`valet devnet failed: ${error instanceof Error ? error.message : error}\n${tail}`);
  } finally {
    clearTimeout(timer);
  }
}
