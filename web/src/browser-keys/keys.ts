// Session keys that live where the app runs: a fresh secp256k1 key per session, kept in memory
// or in IndexedDB encrypted (AES-GCM) under a WebCrypto key that cannot be exported. The
// wrapping key is itself stored in IndexedDB as a CryptoKey (structured clone keeps it
// non-extractable), so the key's bytes never sit anywhere in the clear, and script can use the
// wrapping key but never read it. No DOM: IndexedDB and WebCrypto are globals of browsers and
// workers (and WebCrypto of Node, where the tests use the memory store).

import type { Address, Hex } from 'viem';
import { bytesToHex, hexToBytes } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

/// Where session keys are kept.
export type Storage = 'indexeddb' | 'memory';

/// A session key: its address, and raw ECDSA over a digest (what the validator checks).
export interface SessionKey {
  readonly address: Address;
  /// A 65-byte signature (r ‖ s ‖ v, v = 27 or 28) of `digest` as it is (no EIP-191 prefix).
  signDigest(digest: Hex): Promise<Hex>;
  /// Keeps the key under `sessionId`, to load it back later (a new page, a reload).
  save(sessionId: Hex): Promise<void>;
  /// Forgets the key saved under `sessionId` (a revoked session's).
  forget(sessionId: Hex): Promise<void>;
}

/// Records by name: what a key store keeps its (encrypted) keys and wrapping key in.
export interface Records {
  get(name: string): Promise<unknown>;
  put(name: string, value: unknown): Promise<void>;
  /// Stores `value` unless `name` holds one already (atomically); returns what `name` holds.
  keep(name: string, value: unknown): Promise<unknown>;
  delete(name: string): Promise<void>;
}

/// Records in a Map: kept as long as the page (or process) lives.
export function memoryRecords(): Records {
  const map = new Map<string, unknown>();
  return {
    get: async (name) => map.get(name),
    put: async (name, value) => void map.set(name, value),
    keep: async (name, value) => {
      if (!map.has(name)) map.set(name, value);
      return map.get(name);
    },
    delete: async (name) => void map.delete(name),
  };
}

/// Records in an IndexedDB object store (values by structured clone, CryptoKeys included).
export function indexedDbRecords(database = 'valet-session-keys', store = 'keys'): Records {
  let opened: Promise<IDBDatabase> | undefined;
  const db = (): Promise<IDBDatabase> =>
    (opened ??= new Promise((resolve, reject) => {
      if (typeof indexedDB === 'undefined') {
        reject(new Error('IndexedDB is not available here: use the memory store'));
        return;
      }
      const request = indexedDB.open(database, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(store);
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error ?? new Error(`opening IndexedDB ${database} failed`));
    }));
  const run = async <T>(mode: IDBTransactionMode, act: (s: IDBObjectStore) => IDBRequest): Promise<T> => {
    const tx = (await db()).transaction(store, mode);
    const request = act(tx.objectStore(store));
    return new Promise<T>((resolve, reject) => {
      tx.oncomplete = () => resolve(request.result as T);
      tx.onerror = () => reject(tx.error ?? new Error(`IndexedDB ${database}: ${mode} failed`));
      tx.onabort = () => reject(tx.error ?? new Error(`IndexedDB ${database}: ${mode} aborted`));
    });
  };
  return {
    get: (name) => run('readonly', (s) => s.get(name)),
    put: async (name, value) => void (await run('readwrite', (s) => s.put(value, name))),
    keep: async (name, value) => {
      // One transaction: no other tab can store between the read and the write.
      const tx = (await db()).transaction(store, 'readwrite');
      const objects = tx.objectStore(store);
      let kept: unknown;
      const read = objects.get(name);
      read.onsuccess = () => {
        kept = read.result;
        if (kept === undefined) {
          kept = value;
          objects.add(value, name);
        }
      };
      return new Promise((resolve, reject) => {
        tx.oncomplete = () => resolve(kept);
        tx.onerror = () => reject(tx.error ?? new Error(`IndexedDB ${database}: keep failed`));
        tx.onabort = () => reject(tx.error ?? new Error(`IndexedDB ${database}: keep aborted`));
      });
    },
    delete: async (name) => void (await run('readwrite', (s) => s.delete(name))),
  };
}

/// An encrypted key as stored: AES-GCM ciphertext of the 32 key bytes, bound to the address.
interface Sealed {
  address: Address;
  iv: Uint8Array<ArrayBuffer>;
  ciphertext: ArrayBuffer;
}

/// Bytes of `hex` in a buffer of their own (what WebCrypto takes).
function bytes(hex: Hex): Uint8Array<ArrayBuffer> {
  return new Uint8Array(hexToBytes(hex));
}

const WRAPPING = 'wrapping-key';

/// Keeps session keys encrypted in `records` under one non-extractable AES-GCM key (made on
/// first use and kept in `records` too). Without `records.put` of CryptoKeys (a Map does, as
/// IndexedDB does), nothing here holds the wrapping key's bytes.
export class KeyStore {
  private wrappingKey?: Promise<CryptoKey>;

  constructor(private readonly records: Records) {}

  /// The wrapping key: the one kept, or a new one kept unless another caller (another tab)
  /// kept one first — never two, which would leave keys sealed under the loser unreadable.
  private wrapping(): Promise<CryptoKey> {
    this.wrappingKey ??= (async () => {
      const kept = (await this.records.get(WRAPPING)) as CryptoKey | undefined;
      if (kept) return kept;
      const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
      return (await this.records.keep(WRAPPING, key)) as CryptoKey;
    })();
    // A failure (IndexedDB unavailable) is not remembered: the next call tries again.
    this.wrappingKey.catch(() => (this.wrappingKey = undefined));
    return this.wrappingKey;
  }

  /// Encrypts and keeps `privateKey` under `sessionId`.
  async put(sessionId: Hex, privateKey: Hex): Promise<void> {
    const address = privateKeyToAccount(privateKey).address;
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const plain = bytes(privateKey);
    const ciphertext = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: bytes(address) },
      await this.wrapping(),
      plain,
    );
    plain.fill(0);
    await this.records.put(name(sessionId), { address, iv, ciphertext } satisfies Sealed);
  }

  /// The key kept under `sessionId`, or undefined.
  async get(sessionId: Hex): Promise<SessionKey | undefined> {
    const sealed = (await this.records.get(name(sessionId))) as Sealed | undefined;
    if (!sealed) return undefined;
    const plain = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: sealed.iv, additionalData: bytes(sealed.address) },
        await this.wrapping(),
        sealed.ciphertext,
      ),
    );
    const privateKey = bytesToHex(plain);
    plain.fill(0);
    return sessionKey(privateKey, this);
  }

  /// Forgets the key of `sessionId` (a revoked or expired session's).
  async delete(sessionId: Hex): Promise<void> {
    await this.records.delete(name(sessionId));
  }
}

function name(sessionId: Hex): string {
  return `session:${sessionId.toLowerCase()}`;
}

function sessionKey(privateKey: Hex, store: KeyStore): SessionKey {
  const account = privateKeyToAccount(privateKey);
  return {
    address: account.address,
    signDigest: (digest) => account.sign({ hash: digest }),
    save: (sessionId) => store.put(sessionId, privateKey),
    forget: (sessionId) => store.delete(sessionId),
  };
}

let memory: KeyStore | undefined;
let indexed: KeyStore | undefined;

/// The page's key store of `storage` (one each, shared by everything on the page).
export function keyStore(storage: Storage | KeyStore): KeyStore {
  if (storage instanceof KeyStore) return storage;
  if (storage === 'memory') return (memory ??= new KeyStore(memoryRecords()));
  return (indexed ??= new KeyStore(indexedDbRecords()));
}

/// A fresh session key (from the platform's CSPRNG), kept in `storage` once saved under its
/// session's id.
export async function createSessionKey(options: { storage: Storage | KeyStore }): Promise<SessionKey> {
  return sessionKey(generatePrivateKey(), keyStore(options.storage));
}

/// The session key saved under `sessionId`, or undefined.
export async function loadSessionKey(
  sessionId: Hex,
  options: { storage: Storage | KeyStore },
): Promise<SessionKey | undefined> {
  return keyStore(options.storage).get(sessionId);
}
