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
