import { defineConfig } from 'vitest/config';

// valet-core's WebAssembly build (`make test-wasm`): needs tools/wasm.sh's bindings and the
// native cases in target/wasm/, so it is kept apart from `npx vitest run` (vitest.config.ts).
export default defineConfig({
  test: {
    environment: 'node',
    include: ['wasm-tests/**/*.test.ts'],
    watch: false,
  },
});
