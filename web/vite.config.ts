import { defineConfig } from 'vite';

// The page is served by valet-server (`valet up`), which also answers /v1, /config.json, /rpc and /bundler;
// `npm run dev` proxies those to a running `valet up` on port 8080.
export default defineConfig({
  base: '/',
  // No source maps: the service would not serve them (it refuses *.map), and they are the page's source.
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, target: 'es2022' },
  server: {
    host: '127.0.0.1',
    proxy: {
      '/v1': 'http://127.0.0.1:8080',
      '/config.json': 'http://127.0.0.1:8080',
      // The devnet's node and bundler, for keys kept in the browser (`valet up --bundler alto`).
      '/rpc': 'http://127.0.0.1:8080',
      '/bundler': 'http://127.0.0.1:8080',
    },
    // valet-core's WebAssembly bindings live in ../target/wasm/web (tools/wasm.sh).
    fs: { allow: ['.', '../target/wasm/web'] },
  },
});
