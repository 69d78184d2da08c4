//! Session keys at rest: XChaCha20-Poly1305 under the service's master key, with the session id
//! as associated data (a sealed key moved to another row does not open). Nothing here logs or
//! formats a key.
//!
//! One copy of each secret, wiped after use: the master key lives in one heap buffer (moving the
//! service moves a pointer, not the key) that is wiped when dropped; a session key's plaintext
//! is in [`Zeroizing`] buffers, and the stack that sealing or opening it used is wiped before
//! returning ([`wiping_stack`]): the AEAD and k256 leave copies in temporaries they never wipe.

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use chacha20poly1305::aead::rand_core::RngCore as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use valet_client::session::wiping_stack;
use zeroize::Zeroizing;

use crate::Error;

/// Bytes of the nonce in front of every sealed key.
const NONCE_LENGTH: usize = 24;

/// The 32-byte master key every session key is sealed under.
pub struct MasterKey(Box<Zeroizing<[u8; 32]>>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(…)")
    }
}

impl MasterKey {
    /// From 64 hex digits (with or without `0x`), decoded straight into the key's buffer.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let digits = text.trim().trim_start_matches("0x").as_bytes();
        let mut key = Box::new(Zeroizing::new([0u8; 32]));
        wiping_stack(|| alloy::hex::decode_to_slice(digits, key.as_mut_slice()))
            .map_err(|_| Error::Config("the master key must be 64 hex digits (32 bytes)".into()))?;
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = Box::new(Zeroizing::new([0u8; 32]));
        OsRng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    /// Its hex form (to write to a key file; never log it).
    pub fn to_hex(&self) -> Zeroizing<String> {
        wiping_stack(|| Zeroizing::new(alloy::hex::encode(self.0.as_slice())))
    }

    /// Reads the key from `VALET_MASTER_KEY`, else from `file`, creating the file (mode 0600)
    /// with a fresh key if it does not exist. (The variable stays in the process's environment,
    /// where nothing can wipe it: a key file is the safer home.)
    pub fn load(file: &std::path::Path) -> Result<Self, Error> {
        if let Ok(text) = std::env::var("VALET_MASTER_KEY") {
            return Self::from_hex(&Zeroizing::new(text));
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

    /// A cipher under the key: a copy of it, wiped when dropped (call within [`wiping_stack`]:
    /// constructing it leaves copies on the stack).
    fn cipher(&self) -> XChaCha20Poly1305 {
        let key: &[u8; 32] = &self.0;
        XChaCha20Poly1305::new(key.into())
    }

    /// Seals `key` for session `id`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, id: B256, key: &PrivateKeySigner) -> Result<Vec<u8>, Error> {
        wiping_stack(|| {
            let secret = Zeroizing::new(key.to_bytes().0);
            let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
            // The plaintext is copied into the output buffer and encrypted there, in place.
            let sealed = self
                .cipher()
                .encrypt(&nonce, Payload { msg: secret.as_slice(), aad: id.as_slice() })
                .map_err(|_| Error::Crypto("sealing a session key failed".into()))?;
            Ok([&nonce[..], &sealed].concat())
        })
    }

    /// Opens the key sealed for session `id`. It comes back by value: whoever holds it keeps it
    /// in one place (boxed) and opens it within [`wiping_stack`], or copies of it stay behind on
    /// the stack.
    pub fn open(&self, id: B256, sealed: &[u8]) -> Result<PrivateKeySigner, Error> {
        if sealed.len() <= NONCE_LENGTH {
            return Err(Error::Crypto(format!("sealed key of session {id} is cut short")));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LENGTH);
        wiping_stack(|| {
            let secret = Zeroizing::new(
                self.cipher()
                    .decrypt(
                        &XNonce::from(<[u8; NONCE_LENGTH]>::try_from(nonce).expect("split at 24")),
                        Payload { msg: ciphertext, aad: id.as_slice() },
                    )
                    .map_err(|_| {
                        Error::Crypto(format!("the key of session {id} does not open under this master key"))
                    })?,
            );
            PrivateKeySigner::from_slice(&secret)
                .map_err(|_| Error::Crypto(format!("the key of session {id} is not a valid secp256k1 key")))
        })
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
