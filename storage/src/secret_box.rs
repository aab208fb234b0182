//! Secrets at rest: [`SecretBox`] seals values (API key secrets) with ChaCha20-Poly1305 (RFC 8439)
//! under the server's 32-byte master key, and [`secret_hash`] gives the SHA-256 digest that Basic
//! authentication compares against.
//!
//! A sealed value is `base64(nonce || ciphertext || tag)` with a random 96-bit nonce per value.
//! The master key comes from `SLUICE_MASTER_KEY` (base64, shared by every node of a deployment)
//! or from a `master.key` file created with mode 0600 at first start.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of the master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
/// Length of the ChaCha20-Poly1305 nonce in bytes.
const NONCE_LEN: usize = 12;
/// What the node token is derived for (see [`SecretBox::node_token`]).
const NODE_TOKEN_LABEL: &[u8] = b"sluice internal http v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("the master key must be {MASTER_KEY_LEN} bytes encoded in base64")]
    BadMasterKey,
    #[error("the master key file {path} must hold exactly {MASTER_KEY_LEN} bytes")]
    BadKeyFile { path: String },
    #[error("reading or creating the master key file {path}: {source}")]
    KeyFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The value was sealed under another master key, or altered.
    #[error("a sealed secret does not open with this master key (is it the key the secrets were sealed with?)")]
    WrongKey,
}

/// Seals and opens secrets under the master key. Cheap to clone; its `Debug` shows no key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
    /// Bearer token between the nodes of one deployment, derived from the master key (shared:
    /// every clone of the database handle carries it).
    node_token: std::sync::Arc<str>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(master_key: [u8; MASTER_KEY_LEN]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&master_key)
            .expect("HMAC takes a key of any length");
        mac.update(NODE_TOKEN_LABEL);
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&master_key)),
            node_token: hex(&mac.finalize().into_bytes()).into(),
        }
    }

    /// The token nodes sharing this master key present to each other (internal HTTP):
    /// HMAC-SHA256 of a fixed label under the master key, so it is never the key itself.
    pub fn node_token(&self) -> &str {
        &self.node_token
    }

    /// The master key given as base64 text, e.g. from `SLUICE_MASTER_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, SecretBoxError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| SecretBoxError::BadMasterKey)?;
        let key: [u8; MASTER_KEY_LEN] =
            bytes.try_into().map_err(|_| SecretBoxError::BadMasterKey)?;
        Ok(Self::new(key))
    }

    /// Reads the raw 32-byte master key at `path`, creating it (mode 0600) with random bytes
    /// when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretBoxError> {
        let file_error = |source| SecretBoxError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let read = || -> Result<Self, SecretBoxError> {
            let bytes = std::fs::read(path).map_err(file_error)?;
            let key: [u8; MASTER_KEY_LEN] =
                bytes.try_into().map_err(|_| SecretBoxError::BadKeyFile {
                    path: path.display().to_string(),
                })?;
            Ok(Self::new(key))
        };
        if path.exists() {
            return read();
        }
        let key: [u8; MASTER_KEY_LEN] = ChaCha20Poly1305::generate_key(&mut OsRng).into();
        let mut options = std::fs::OpenOptions::new();
        // `create_new`: of two processes starting at once, one writes the key, the other reads it.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                file.write_all(&key).map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                Ok(Self::new(key))
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read(),
            Err(error) => Err(file_error(error)),
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce; returns `base64(nonce || ciphertext)`.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext)
            .expect("ChaCha20-Poly1305 encrypts any input shorter than 256 GiB");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        BASE64.encode(sealed)
    }

    /// Decrypts a value made by [`SecretBox::seal`] under the same master key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SecretBoxError> {
        let bytes = BASE64
            .decode(sealed)
            .map_err(|_| SecretBoxError::WrongKey)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretBoxError::WrongKey);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretBoxError::WrongKey)
    }
}

/// SHA-256 of a secret, in lowercase hex. Secrets are 40 random alphanumerics (about 238 bits),
/// so a fast hash suffices: there is nothing to brute-force that a slow hash would protect.
pub fn secret_hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `secret` hashes to `expected_hash`, compared in constant time.
pub fn secret_matches(secret: &str, expected_hash: &str) -> bool {
    secret_hash(secret)
        .as_bytes()
        .ct_eq(expected_hash.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_tokens_match_only_under_the_same_key() {
        let one = SecretBox::new([1; MASTER_KEY_LEN]);
        assert_eq!(
            one.node_token(),
            SecretBox::new([1; MASTER_KEY_LEN]).node_token()
        );
        assert_ne!(
            one.node_token(),
            SecretBox::new([2; MASTER_KEY_LEN]).node_token()
        );
        assert_eq!(one.node_token().len(), 64);
    }

    #[test]
    fn sealed_values_open_only_under_their_key() {
        let sealer = SecretBox::new([1; MASTER_KEY_LEN]);
        let sealed = sealer.seal(b"secret");
        assert!(!sealed.contains("secret"));
        assert_ne!(sealed, sealer.seal(b"secret"), "a fresh nonce per value");
        assert_eq!(sealer.open(&sealed).unwrap(), b"secret");
        let other = SecretBox::new([2; MASTER_KEY_LEN]);
        assert!(matches!(other.open(&sealed), Err(SecretBoxError::WrongKey)));
        assert!(matches!(sealer.open("AAAA"), Err(SecretBoxError::WrongKey)));
    }

    #[test]
    fn master_key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let sealed = SecretBox::load_or_create(&path).unwrap().seal(b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            SecretBox::load_or_create(&path)
                .unwrap()
                .open(&sealed)
                .unwrap(),
            b"x"
        );
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"short").unwrap();
        assert!(matches!(
            SecretBox::load_or_create(&short),
            Err(SecretBoxError::BadKeyFile { .. })
        ));
        assert_eq!(
            SecretBox::from_base64(&BASE64.encode([1; MASTER_KEY_LEN]))
                .unwrap()
                .open(&SecretBox::new([1; MASTER_KEY_LEN]).seal(b"y"))
                .unwrap(),
            b"y"
        );
    }

    #[test]
    fn secret_hash_is_sha256_hex() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(secret_matches("abc", &secret_hash("abc")));
        assert!(!secret_matches("abd", &secret_hash("abc")));
    }
}
