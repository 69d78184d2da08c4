// The IndexedDB key store (web/src/browser-keys/keys.ts) in a real browser (Debian's Chromium,
// headless, on a page served from 127.0.0.1): a session key saved under its session id is
// found again after a reload and signs as before; what IndexedDB holds is the key encrypted
// under a wrapping CryptoKey that cannot be exported; a forgotten key is gone.

import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Hex, recoverAddress } from 'viem';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Chromium, launchChromium } from '../tests/harness';
import { ROOT } from './load';

/// keys.ts bundled for the page, as `window.valetKeys`.
async function bundle(): Promise<string> {
  const out = await build({
    configFile: false,
    logLevel: 'silent',
    build: {
      write: false,
      minify: false,
      lib: { entry: `${ROOT}web/src/browser-keys/keys.ts`, formats: ['iife'], name: 'valetKeys' },
    },
  });
  const outputs = Array.isArray(out) ? out : [out];
  const chunk = outputs.flatMap((o) => ('output' in o ? o.output : [])).find((o) => o.type === 'chunk');
  if (!chunk || chunk.type !== 'chunk') throw new Error('vite built no chunk');
  return chunk.code;
}

describe('the IndexedDB key store, in Chromium', () => {
  let server: Server;
  let url: string;
  let browser: Chromium;
  let code: string;

  beforeAll(async () => {
    code = await bundle();
    server = createServer((_, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>keys</title>');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await launchChromium();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((done) => server?.close(done));
  });

  it('keeps a key across a reload, encrypted under a key nobody can export, until forgotten', async () => {
    const page = await browser.context.newPage();
    const id = `0x${'5e'.repeat(32)}` as Hex;
    const digest = `0x${'d1'.repeat(32)}` as Hex;
    type Keys = typeof import('../src/browser-keys/keys');
    const load = async () => {
      await page.goto(url);
      await page.addScriptTag({ content: code });
    };

    await load();
    const made = await page.evaluate(
      async ([id, digest]) => {
        const keys = (window as unknown as { valetKeys: Keys }).valetKeys;
        const key = await keys.createSessionKey({ storage: 'indexeddb' });
        await key.save(id);
        return { address: key.address, signature: await key.signDigest(digest) };
      },
      [id, digest] as const,
    );
    expect(await recoverAddress({ hash: digest, signature: made.signature })).toBe(made.address);

    await page.reload();
    await load();
    const again = await page.evaluate(
      async ([id, digest]) => {
        const keys = (window as unknown as { valetKeys: Keys }).valetKeys;
        const key = await keys.loadSessionKey(id, { storage: 'indexeddb' });
        // What IndexedDB itself holds.
        const db = await new Promise<IDBDatabase>((done, fail) => {
          const open = indexedDB.open('valet-session-keys');
          open.onsuccess = () => done(open.result);
          open.onerror = () => fail(open.error);
        });
        const read = (name: string) =>
          new Promise<unknown>((done, fail) => {
            const get = db.transaction('keys').objectStore('keys').get(name);
            get.onsuccess = () => done(get.result);
            get.onerror = () => fail(get.error);
          });
        const wrapping = (await read('wrapping-key')) as CryptoKey;
        const sealed = (await read(`session:${id}`)) as { address: string; iv: Uint8Array; ciphertext: ArrayBuffer };
        const exported = await crypto.subtle.exportKey('raw', wrapping).then(
          () => 'exported',
          (e: Error) => e.name,
        );
        db.close();
        const result = {
          address: key?.address,
          signature: key ? await key.signDigest(digest) : undefined,
          wrapping: { isCryptoKey: wrapping instanceof CryptoKey, extractable: wrapping.extractable, exported },
          sealed: { fields: Object.keys(sealed).sort(), address: sealed.address, bytes: sealed.ciphertext.byteLength },
        };
        await key?.forget(id);
        return { ...result, afterForget: (await keys.loadSessionKey(id, { storage: 'indexeddb' }))?.address ?? null };
      },
      [id, digest] as const,
    );
    expect(again.address).toBe(made.address);
    expect(again.signature).toBe(made.signature);
    expect(again.wrapping).toEqual({ isCryptoKey: true, extractable: false, exported: 'InvalidAccessError' });
    expect(again.sealed).toEqual({ fields: ['address', 'ciphertext', 'iv'], address: made.address, bytes: 48 });
    expect(again.afterForget).toBeNull();
    await page.close();
  }, 120_000);
});
