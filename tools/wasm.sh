#!/usr/bin/env bash
# valet-core in WebAssembly: builds crates/valet-wasm for wasm32 (release) and generates its
# JS bindings into target/wasm/{nodejs,web}/ (not in git), which web/src/core/valet-core.ts wraps.
#   tools/wasm.sh     the wasm32 target, wasm-bindgen's CLI at exactly the crate's version in
#                     target/tools/ (unless there), the build, the bindings (idempotent)
# The wasm32 build goes to $CARGO_TARGET_DIR when set (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."

# The CLI must be the very version of the wasm-bindgen crate the build links (pinned with `=`).
version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "tools/wasm.sh: no wasm-bindgen = \"=X.Y.Z\" in Cargo.toml" >&2; exit 1; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

root=target/tools
bindgen=$root/bin/wasm-bindgen
if [ "$("$bindgen" --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
    # --locked first; should the CLI's own lockfile name a version the registry no longer
    # offers (it happens: a yanked dependency), resolve its dependencies afresh.
    cargo install -q --locked --version "=$version" wasm-bindgen-cli --root "$root" \
        || cargo install -q --version "=$version" wasm-bindgen-cli --root "$root"
fi

cargo build -q --locked --release -p valet-wasm --target wasm32-unknown-unknown
wasm="${CARGO_TARGET_DIR:-target}/wasm32-unknown-unknown/release/valet_wasm.wasm"
"$bindgen" --target nodejs --out-dir target/wasm/nodejs "$wasm"
"$bindgen" --target web --out-dir target/wasm/web "$wasm"
