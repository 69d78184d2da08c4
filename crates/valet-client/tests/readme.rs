//! The README's twenty lines are the quickstart example's, verbatim (the example is built by
//! `cargo test --all-targets` and run by `make test-rust`).

#[test]
fn the_readme_shows_the_quickstart_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/quickstart.rs")).expect("example");
    let readme = std::fs::read_to_string(root.join("../../README.md")).expect("README");
    let begin = example.find("// README begin\n").expect("begin marker") + "// README begin\n".len();
    let end = example.find("    // README end").expect("end marker");
    let snippet: Vec<&str> = example[begin..end].lines().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect();
    let code_lines = snippet.iter().filter(|l| !l.trim().is_empty() && !l.trim().starts_with("//")).count();
    assert!(code_lines <= 20, "twenty lines of Rust, not {code_lines}");
    let block = format!("```rust\n{}\n```", snippet.join("\n"));
    assert!(readme.contains(&block), "README.md's Rust block differs from examples/quickstart.rs:\n{block}");
}

/// The README's EIP-7702 lines are the `eoa` example's, verbatim (run by `make test-rust`).
#[test]
fn the_readme_shows_the_eoa_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/eoa.rs")).expect("example");
    let readme = std::fs::read_to_string(root.join("../../README.md")).expect("README");
    let begin = example.find("// README begin\n").expect("begin marker") + "// README begin\n".len();
    let end = example.find("    // README end").expect("end marker");
    let snippet: Vec<&str> = example[begin..end].lines().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect();
    let block = format!("```rust\n{}\n```", snippet.join("\n"));
    assert!(readme.contains(&block), "README.md's EIP-7702 block differs from examples/eoa.rs:\n{block}");
}

/// The typed data wallets sign hashes to the digests the validator checks (alloy's own EIP-712
/// implementation computes it from the JSON).
#[test]
fn typed_data_for_wallets_hashes_to_the_validators_digests() {
    use alloy::dyn_abi::TypedData;
    use alloy::primitives::{Address, B256};
    use valet_core::eip712;
    use valet_core::spec::{SessionSpec, SpecContext};
    let spec = r#"
valid_for = "1h"
max_uses = 7
salt = 3
[[permission]]
target = "0x00000000000000000000000000000000000000f7"
function = "mint(address to, uint256 quantity)"
rules = [{ arg = "to", eq = "$account" }, { arg = "quantity", in_range = [1, 5] }]
max_uses = 4
[[permission]]
target = "0x00000000000000000000000000000000000000aa"
value_limit = "0.5 ether"
[[limit]]
native = "1 ether"
period = "1d"
"#;
    let ctx = SpecContext {
        now: 1_800_000_000,
        session_key: Address::repeat_byte(0x5e),
        account_epoch: 2,
        ..Default::default()
    };
    let session = SessionSpec::from_toml(spec).expect("spec").resolve(&ctx).expect("resolves");
    let (account, validator) = (Address::repeat_byte(0xac), Address::repeat_byte(0x7a));
    let json = eip712::grant_typed_data(&session, account, validator, 31337).expect("typed data");
    let typed: TypedData = serde_json::from_value(json).expect("alloy parses it");
    let expected = eip712::grant_digest(&session, account, validator, 31337).expect("digest");
    assert_eq!(typed.eip712_signing_hash().expect("hashes"), expected);
    let id = B256::repeat_byte(9);
    let revoke: TypedData =
        serde_json::from_value(eip712::revoke_session_typed_data(account, id, validator, 31337)).expect("parses");
    assert_eq!(
        revoke.eip712_signing_hash().expect("hashes"),
        eip712::revoke_session_digest(account, id, validator, 31337)
    );
}
