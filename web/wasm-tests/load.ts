// The WebAssembly build of valet-core for the tests in this folder: the Node bindings that
// tools/wasm.sh generates into target/wasm/nodejs/, and the native cases the generator writes
// beside them (`make test-wasm` does both).

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { ValetCore, type Bindings } from '../src/core/valet-core';

/// The repository's root.
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const BINDINGS = `${ROOT}target/wasm/nodejs/valet_wasm.js`;

/// valet-core, through WebAssembly.
export function loadCore(): ValetCore {
  if (!existsSync(BINDINGS)) throw new Error(`${BINDINGS} is missing: run tools/wasm.sh (or make test-wasm)`);
  return new ValetCore(createRequire(import.meta.url)(BINDINGS) as Bindings);
}

/// A JSON file of the repository (path from its root).
export function readJson<T>(path: string, hint: string): T {
  const file = `${ROOT}${path}`;
  if (!existsSync(file)) throw new Error(`${file} is missing: ${hint}`);
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}
