//! The CLI's state under the data directory (`~/.valet` or `$VALET_HOME`):
//! - `devnet.json`: the running `valet devnet` (endpoints, addresses, names), removed when it stops;
//! - `sessions/<id>.json`: a granted session (packed session, grant, account, chain) and
//!   `sessions/<id>.key`: its session key as an encrypted Ethereum keystore (scrypt + AES), under
//!   the password in `VALET_PASSWORD`. Nothing that can sign is stored in plain text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What `valet devnet` writes for the other commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DevnetInfo {
    pub(crate) rpc_url: String,
    pub(crate) bundler_url: Option<String>,
    pub(crate) chain_id: u64,
    pub(crate) entry_point: Address,
    pub(crate) validator: Address,
    pub(crate) factory: Address,
    /// Contract names usable in specs and `exec --to`.
    pub(crate) names: BTreeMap<String, Address>,
    /// The dev key that relays `handleOps` (anvil's well-known test key: public, devnet only).
    pub(crate) relayer_key: String,
    /// The PID of the `valet devnet` that wrote it.
    pub(crate) pid: u32,
    /// anvil's dev keys (its public test mnemonic's), for `valet devnet --detach` to print.
    #[serde(default)]
    pub(crate) dev_keys: Vec<String>,
}

pub(crate) fn devnet_path(dir: &Path) -> PathBuf {
    dir.join("devnet.json")
}

pub(crate) fn read_devnet(dir: &Path) -> anyhow::Result<Option<DevnetInfo>> {
    let path = devnet_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub(crate) fn write_devnet(dir: &Path, info: &DevnetInfo) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = devnet_path(dir);
    std::fs::write(&path, serde_json::to_string_pretty(info)?)
        .with_context(|| format!("writing {}", path.display()))?;
    // It holds the devnet's relayer key (a public dev key, but a key).
    private(&path, 0o600)
}

/// Whether process `pid` is alive (Linux: it has a `/proc` entry and is not a zombie).
pub(crate) fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last `)`.
        Ok(stat) => stat.rsplit_once(')').is_none_or(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Removes `devnet.json` from its directory when dropped: `valet devnet` holds one while running.
pub(crate) struct DevnetFile(pub(crate) PathBuf);

impl Drop for DevnetFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(devnet_path(&self.0));
    }
}

/// A stored session (without its key).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub(crate) id: B256,
    pub(crate) chain_id: u64,
    pub(crate) validator: Address,
    pub(crate) account: Address,
    pub(crate) owner: Address,
    pub(crate) salt: U256,
    pub(crate) session_key: Address,
    /// The packed session.
    pub(crate) session: Bytes,
    /// The owner's grant signature.
    pub(crate) grant: Bytes,
    /// The approval summary the owner read.
    pub(crate) summary: Vec<String>,
    /// Each permission's function as the spec wrote it (`name(type arg, …)`), for refusals in
    /// the spec's words.
    #[serde(default)]
    pub(crate) functions: Vec<Option<String>>,
    /// The names known at grant (the devnet's and `--name`s), for `exec --to` and refusals.
    #[serde(default)]
    pub(crate) names: BTreeMap<String, Address>,
    /// The hash of the chain's genesis block at grant: a chain with the same id and addresses
    /// but another history (a restarted devnet) is not the one the session was granted on.
    #[serde(default)]
    pub(crate) genesis: Option<B256>,
    /// The account's kind (absent: a smart account).
    #[serde(default)]
    pub(crate) account_kind: StoredKind,
    /// For an EIP-7702 account not yet delegating to Valet: the EOA's signed delegation, which
    /// the session's first operation carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) authorization: Option<valet_core::user_operation::Eip7702Auth>,
}

/// A stored session's account kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoredKind {
    #[default]
    Smart,
    Eip7702,
}

impl From<StoredKind> for valet_client::AccountKind {
    fn from(kind: StoredKind) -> Self {
        match kind {
            StoredKind::Smart => valet_client::AccountKind::Smart,
            StoredKind::Eip7702 => valet_client::AccountKind::Eip7702,
        }
    }
}

impl From<valet_client::AccountKind> for StoredKind {
    fn from(kind: valet_client::AccountKind) -> Self {
        match kind {
            valet_client::AccountKind::Smart => StoredKind::Smart,
            valet_client::AccountKind::Eip7702 => StoredKind::Eip7702,
        }
    }
}

fn sessions_dir(dir: &Path) -> PathBuf {
    dir.join("sessions")
}

/// The password protecting stored session keys.
pub(crate) fn password() -> anyhow::Result<String> {
    match std::env::var("VALET_PASSWORD") {
        Ok(p) if !p.is_empty() => Ok(p),
        _ => bail!("set VALET_PASSWORD: session keys are stored encrypted under it"),
    }
}

/// Makes `path` readable by its owner only (`mode`: 0o600 for a file, 0o700 for a directory).
fn private(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("making {} private", path.display()))
}

pub(crate) fn save_session(dir: &Path, session: &StoredSession, key: &PrivateKeySigner) -> anyhow::Result<()> {
    let sessions = sessions_dir(dir);
    std::fs::create_dir_all(&sessions).with_context(|| format!("creating {}", sessions.display()))?;
    // The keys are encrypted, and still nobody else's to read (nor to copy for an offline guess).
    private(&sessions, 0o700)?;
    let name = format!("{}.key", session.id);
    PrivateKeySigner::encrypt_keystore(&sessions, &mut rand::thread_rng(), key.to_bytes(), password()?, Some(&name))
        .context("encrypting the session key")?;
    private(&sessions.join(&name), 0o600)?;
    let path = sessions.join(format!("{}.json", session.id));
    std::fs::write(&path, serde_json::to_string_pretty(session)?)
        .with_context(|| format!("writing {}", path.display()))?;
    private(&path, 0o600)
}

/// Every stored session.
pub(crate) fn list_sessions(dir: &Path) -> anyhow::Result<Vec<StoredSession>> {
    let sessions = sessions_dir(dir);
    let entries = match std::fs::read_dir(&sessions) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", sessions.display())),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            out.push(serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?);
        }
    }
    out.sort_by_key(|s: &StoredSession| s.id);
    Ok(out)
}

/// The stored session whose id starts with `prefix` (with or without `0x`).
pub(crate) fn find_session(dir: &Path, prefix: &str) -> anyhow::Result<StoredSession> {
    let wanted = prefix.trim_start_matches("0x").to_ascii_lowercase();
    if wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("`{prefix}` is not a session id (hex)");
    }
    let matches: Vec<StoredSession> =
        list_sessions(dir)?.into_iter().filter(|s| alloy::hex::encode(s.id).starts_with(&wanted)).collect();
    match matches.len() {
        1 => Ok(matches.into_iter().next().expect("one match")),
        0 => bail!("no stored session {prefix} in {}: grant one with `valet session grant`", dir.display()),
        n => bail!("{n} stored sessions start with {prefix}: give more of the id"),
    }
}

/// Decrypts a stored session's key.
pub(crate) fn session_key(dir: &Path, id: B256) -> anyhow::Result<PrivateKeySigner> {
    let path = sessions_dir(dir).join(format!("{id}.key"));
    PrivateKeySigner::decrypt_keystore(&path, password()?)
        .with_context(|| format!("decrypting {} (is VALET_PASSWORD the one it was stored with?)", path.display()))
}
