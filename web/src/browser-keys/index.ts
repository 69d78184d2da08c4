// Session keys in the app's own runtime (a browser, a worker, Node), no service required:
// valet-core through WebAssembly for every encoding and decision, viem for keys, signing and RPC.
export * from './keys';
export * from './session';
