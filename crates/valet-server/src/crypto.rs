//! Session keys at rest: XChaCha20-Poly1305 under the service's master key, with the session id
//! as associated data (a sealed key moved to another row does not open). Plaintext keys live in
//! [`Zeroizing`] buffers and are wiped when dropped; nothing here logs or formats a key.

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::Error;

/// Bytes of the nonce in front of every sealed key.
const NONCE_LENGTH: usize = 24;

/// The 32-byte master key every session key is sealed under.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// From 64 hex digits (with or without `0x`).
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let text = Zeroizing::new(text.trim().trim_start_matches("0x").to_string());
        let mut key = Zeroizing::new([0u8; 32]);
        alloy::hex::decode_to_slice(text.as_bytes(), key.as_mut())
            .map_err(|_| Error::Config("the master key must be 64 hex digits (32 bytes)".into()))?;
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(XChaCha20Poly1305::generate_key(&mut OsRng).into()))
    }

    /// Its hex form (to write to a key file; never log it).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(alloy::hex::encode(self.0.as_ref()))
    }

    /// Reads the key from `VALET_MASTER_KEY`, else from `file`, creating the file (mode 0600)
    /// with a fresh key if it does not exist.
    pub fn load(file: &std::path::Path) -> Result<Self, Error> {
        if let Ok(text) = std::env::var("VALET_MASTER_KEY") {
            return Self::from_hex(&text);
        }
        match std::fs::read_to_string(file) {
            Ok(text) => Self::from_hex(&Zeroizing::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(file, key.to_hex().as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(Error::Config(format!("reading the master key file {}: {e}", file.display()))),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }

    /// Seals `key` for session `id`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, id: B256, key: &PrivateKeySigner) -> Result<Vec<u8>, Error> {
        let secret = Zeroizing::new(key.to_bytes().0);
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(&nonce, Payload { msg: secret.as_slice(), aad: id.as_slice() })
            .map_err(|_| Error::Crypto("sealing a session key failed".into()))?;
        Ok([&nonce[..], &sealed].concat())
    }

    /// Opens the key sealed for session `id`.
    pub fn open(&self, id: B256, sealed: &[u8]) -> Result<PrivateKeySigner, Error> {
        if sealed.len() <= NONCE_LENGTH {
            return Err(Error::Crypto(format!("sealed key of session {id} is cut short")));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LENGTH);
        let secret = Zeroizing::new(
            self.cipher()
                .decrypt(
                    &XNonce::from(<[u8; NONCE_LENGTH]>::try_from(nonce).expect("split at 24")),
                    Payload { msg: ciphertext, aad: id.as_slice() },
                )
                .map_err(|_| Error::Crypto(format!("the key of session {id} does not open under this master key")))?,
        );
        PrivateKeySigner::from_slice(&secret)
            .map_err(|_| Error::Crypto(format!("the key of session {id} is not a valid secp256k1 key")))
    }
}

/// Writes `bytes` to a new file readable by its owner only (mode 0600; refuses to overwrite).
pub fn write_private(file: &std::path::Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("creating {}: {e}", dir.display())))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| Error::Config(format!("creating the master key file {}: {e}", file.display())))?;
    f.write_all(bytes).map_err(|e| Error::Config(format!("writing {}: {e}", file.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_open_only_under_their_master_key_and_session() {
        let master = MasterKey::generate();
        let key = PrivateKeySigner::random();
        let id = B256::repeat_byte(1);
        let sealed = master.seal(id, &key).expect("seals");
        assert!(!sealed.windows(32).any(|w| w == key.to_bytes().as_slice()), "no plaintext in the sealed form");
        assert_eq!(master.open(id, &sealed).expect("opens").address(), key.address());
        assert!(master.open(B256::repeat_byte(2), &sealed).is_err(), "bound to its session");
        assert!(MasterKey::generate().open(id, &sealed).is_err(), "bound to its master key");
        let mut tampered = sealed.clone();
        tampered[30] ^= 1;
        assert!(master.open(id, &tampered).is_err(), "authenticated");
        assert!(master.open(id, &sealed[..10]).is_err());
        let again = MasterKey::from_hex(&master.to_hex()).expect("hex round trip");
        assert_eq!(again.open(id, &sealed).expect("opens").address(), key.address());
        assert!(MasterKey::from_hex("12").is_err());
        assert_eq!(format!("{master:?}"), "MasterKey(…)");
    }
}
