# Valet: one Makefile, every entry point. Each target installs what it needs on first use.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

TOOLS      := tools/node_modules
FORGE      := $(TOOLS)/@foundry-rs/forge-linux-amd64/bin/forge
FORGE_ARGS := --use ../tools/solc --offline
STAMP      := $(TOOLS)/.valet-installed

WEB_STAMP  := web/node_modules/.valet-installed

.PHONY: demo up web bench bench-sdk test test-web test-wasm test-api test-contracts test-gas test-artifacts test-rust gas snapshot artifacts vectors tools clean

## demo: the main job on a local devnet — one grant, ten mints, the eleventh refused
demo: tools
	cargo run -q --locked -p valet-cli -- demo

## up: the session-key service and the dApp on a fresh local devnet at http://127.0.0.1:8080, until Ctrl-C
up: tools web
	cargo run -q --locked -p valet-cli -- up $(UP_ARGS)

## bench: a load run of the service on anvil at 1, 8, 32 and 64 concurrent sessions (release): exec/s, p50/p99, errors 0, chain == record, ratio to 1 session; Alto at 8 beside direct
bench: tools
	cargo run -q --release --locked -p valet-cli -- bench $(BENCH_ARGS)

## bench-sdk: the SDK's hot path without the network (release): spec, digests, evaluator, pre-flight and the build of a batch of 8, as ns and as ratios to one ECDSA sign, with the targets
bench-sdk:
	cargo run -q --release --locked --offline -p valet-client --example hotpath

## test: every test (CI runs exactly this)
test: test-contracts test-gas test-artifacts test-rust test-api test-web test-wasm

## tools: pinned anvil/forge/cast/solc-js/EntryPoint/OpenZeppelin from npm (idempotent)
tools: $(STAMP)
$(STAMP): tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Fuzz and invariant gas varies from run to run; the snapshot holds the deterministic tests.
SNAPSHOT_ARGS := --no-match-contract 'GasTable|Invariants' --no-match-test 'testFuzz'

## test-contracts: forge unit, fuzz and invariant tests; unit-test gas checked against .gas-snapshot
test-contracts: tools
	cd contracts && ../$(FORGE) test $(FORGE_ARGS) --no-match-contract GasTable
	cd contracts && ../$(FORGE) snapshot $(FORGE_ARGS) $(SNAPSHOT_ARGS) --check ../.gas-snapshot

## test-gas: the gas table's targets hold and gas.json is current
test-gas: tools
	mkdir -p target
	cd contracts && VALET_GAS_OUT=../target/gas.json ../$(FORGE) test $(FORGE_ARGS) --isolate --match-contract GasTable
	node tools/gas-table.js target/gas.json --check gas.json

## snapshot: rewrite .gas-snapshot after an intended gas change
snapshot: tools
	cd contracts && ../$(FORGE) snapshot $(FORGE_ARGS) $(SNAPSHOT_ARGS) --snap ../.gas-snapshot

## gas: the headline gas table, written to gas.json
gas: tools
	cd contracts && VALET_GAS_OUT=../gas.json ../$(FORGE) test $(FORGE_ARGS) --isolate --match-contract GasTable
	@node tools/gas-table.js gas.json

## vectors: rewrite contracts/test/vectors/sessions.json (shared with the Rust tests)
vectors: tools
	cd contracts && VALET_WRITE_VECTORS=true ../$(FORGE) test $(FORGE_ARGS) --match-test test_vectors_matchTheValidator

## artifacts: ABI + bytecode for the Rust side, into contracts/artifacts/
artifacts: tools
	cd contracts && ../$(FORGE) build $(FORGE_ARGS)
	node tools/export-artifacts.js contracts/artifacts

## test-artifacts: fails when contracts/artifacts/ is stale
test-artifacts: tools
	cd contracts && ../$(FORGE) build $(FORGE_ARGS)
	node tools/export-artifacts.js contracts/artifacts --check

## test-rust: formatting, clippy (warnings are errors), the Rust tests (against a real anvil and Alto), the README's examples
test-rust: tools
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo test --workspace --locked --all-targets
	cargo test --workspace --locked --doc
	cargo run -q --locked -p valet-client --example quickstart
	cargo run -q --locked -p valet-client --example eoa

## test-api: schemathesis fuzzes the service from its OpenAPI document (no 5xx, documented answers)
test-api: tools
	cargo build -q --locked -p valet-cli
	tools/schemathesis.sh

## web: the dApp (TypeScript + viem, valet-core in WebAssembly for keys kept in the browser) type-checked and built by Vite into web/dist, which `valet up` serves
web: $(WEB_STAMP)
	tools/wasm.sh
	cd web && npm run -s build
$(WEB_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## test-web: the dApp's unit tests, then connect → grant → mint → refusal → revoke in Debian's Chromium against `valet up`
test-web: tools web
	tools/chromium.sh
	cargo build -q --locked -p valet-cli
	cd web && npx vitest run

# The differential replay's cases: how many, and the seed (another seed, other cases).
WASM_CASES := 2000
WASM_SEED  := 4337

## test-wasm: valet-core in WebAssembly for browsers and Node (tools/wasm.sh): the shared vectors, the demo spec's typed data and digest, 2,000 random evaluator cases that must get the native answers, and session keys held by the app (web/src/browser-keys): against a devnet with Alto, and in IndexedDB in Debian's Chromium
test-wasm: tools $(WEB_STAMP)
	tools/chromium.sh
	tools/wasm.sh
	cargo build -q --locked -p valet-cli
	cargo run -q --locked -p valet-wasm --example cases -- $(WASM_CASES) $(WASM_SEED) target/wasm/cases.json
	cd web && npx vitest run --config vitest.wasm.config.ts

clean:
	rm -rf target
