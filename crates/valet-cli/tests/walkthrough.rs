//! The README's `valet` walkthrough, run exactly as written (the `cargo install` line aside: the
//! `valet` this test was built with is first on the PATH instead), in a fresh home directory, by
//! bash with `set -euo pipefail`: if any step stops working, this fails.

mod common;

use std::path::Path;
use std::process::Command;

use common::TempDir;

/// The shell block between `<!-- walkthrough -->` and `<!-- /walkthrough -->` in the README.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
        .expect("reading the README");
    let (_, rest) = readme.split_once("<!-- walkthrough -->").expect("the README marks its walkthrough");
    let (block, _) = rest.split_once("<!-- /walkthrough -->").expect("the walkthrough's end marker");
    let block = block.trim().strip_prefix("```sh").and_then(|b| b.strip_suffix("```")).expect("one ```sh block");
    block.to_string()
}

/// Stops a devnet the walkthrough left running (it stops it itself when it succeeds).
struct DevnetGuard<'a>(&'a Path);

impl Drop for DevnetGuard<'_> {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(self.0.join(".valet/devnet.json")) else { return };
        let info: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if let Some(pid) = info["pid"].as_u64() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
}

#[test]
fn the_readme_walkthrough_works_as_written() {
    let script = walkthrough();
    let install = script.lines().filter(|l| l.starts_with("cargo install")).count();
    assert_eq!(install, 1, "the walkthrough says how to get valet on the PATH:\n{script}");
    let script: String = script.lines().filter(|l| !l.starts_with("cargo install")).collect::<Vec<_>>().join("\n");
    assert!(!script.contains("0x1a2b") && !script.contains('…'), "no placeholders to fill in:\n{script}");

    let home = TempDir::new("walkthrough");
    let _devnet = DevnetGuard(&home.0);
    let valet = Path::new(env!("CARGO_BIN_EXE_valet"));
    let path = format!("{}:{}", valet.parent().expect("bin dir").display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new("bash");
    for var in common::VALET_VARS {
        command.env_remove(var);
    }
    let output = command
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&home.0)
        .env("HOME", &home.0)
        .env("PATH", path)
        .output()
        .expect("bash runs the walkthrough");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the walkthrough failed ({}):\n{stdout}\n--- stderr\n{stderr}", output.status);
    // What each step is there to show.
    for expected in [
        "in the background",
        "now holds 1 ETH",
        "not deployed yet",
        "also deployed the account and enabled the session",
        "refused before sending, as the session says",
        "1/10",
        "revoked",
        "stopped",
    ] {
        assert!(
            stdout.contains(expected),
            "the walkthrough's output lacks `{expected}`:\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    assert!(stderr.contains("quantity = 6, but the session requires quantity ≤ 5"), "the refusal's reason:\n{stderr}");
    assert!(stderr.contains("May call mint"), "the owner read the summary before signing:\n{stderr}");
    assert!(!home.0.join(".valet/devnet.json").exists(), "the devnet was stopped");
}
