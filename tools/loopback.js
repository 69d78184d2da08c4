'use strict';
// loopback.js: preload (`node --require ./loopback.js <script>`) that makes every
// TCP server in the process listen on 127.0.0.1 only.
//
// Why: the Alto bundler (@pimlico/alto) calls `listen({ port, host: "0.0.0.0" })`
// with the host hard-coded, and it has no flag to change it. Valet's tests and local
// stack must not expose a bundler (which holds funded executor keys) beyond loopback,
// so we pin the host here instead of patching Alto. This file is our own code; it
// copies nothing from Alto.
//
// It wraps net.Server.prototype.listen, which http/https servers inherit, and turns
// every TCP form of the call into `listen({ ...options, host: '127.0.0.1' }, cb)`:
//   listen()                     listen(cb)
//   listen(port)                 listen(port, cb)
//   listen(port, host)           listen(port, host, cb)
//   listen(port, backlog, cb)    listen(port, host, backlog, cb)
//   listen({ port, host, backlog, exclusive, ... }[, cb])
// A missing/null port means 0 (the OS picks one), as in Node. Unix sockets and named
// pipes (a non-numeric string or { path }) and inherited handles ({ fd }, { handle },
// or a handle object) are not TCP binds and are passed through unchanged.

const net = require('net');

const LOOPBACK = '127.0.0.1';
const originalListen = net.Server.prototype.listen;

// Node's own rule: a string is a port if Number(s) >= 0, otherwise a pipe path.
function isPortLike(value) {
  if (value === undefined || value === null || typeof value === 'number') return true;
  if (typeof value === 'string') return value !== '' && Number(value) >= 0;
  return false;
}

function isHandleLike(value) {
  return value !== null && typeof value === 'object' &&
    ('_handle' in value || 'handle' in value || 'fd' in value);
}

function loopbackListen(...args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const first = args[0];
  let options;

  if (first !== null && typeof first === 'object') {
    if (isHandleLike(first) || ('path' in first && !('port' in first))) {
      return originalListen.apply(this, callback ? [...args, callback] : args);
    }
    options = { ...first, host: LOOPBACK };
    if (options.port === undefined || options.port === null) options.port = 0;
  } else if (isPortLike(first)) {
    options = { port: first === undefined || first === null ? 0 : first, host: LOOPBACK };
    let i = 1;
    // Optional host slot (a string, or null/undefined used as a placeholder).
    if (i < args.length && (typeof args[i] === 'string' || args[i] == null)) i += 1;
    // Optional backlog.
    if (i < args.length && typeof args[i] === 'number') options.backlog = args[i];
  } else {
    // listen(path[, backlog][, cb]): a Unix socket or named pipe.
    return originalListen.apply(this, callback ? [...args, callback] : args);
  }

  return callback
    ? originalListen.call(this, options, callback)
    : originalListen.call(this, options);
}

net.Server.prototype.listen = loopbackListen;
