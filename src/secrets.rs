//! Secrets at rest: the Page and Conversions API access tokens (and, later, other channels' secrets) are
//! stored encrypted, and decrypted only where they are sent to Meta.
//!
//! The key is `THREADCART_SECRETS_KEY`: 32 random bytes in standard base64 (`openssl rand -base64 32`).
//! Values are sealed with XChaCha20-Poly1305 (an AEAD: a changed byte fails to open rather than giving a
//! wrong token) under a random 24-byte nonce, and stored as `v1:` + base64(nonce || ciphertext and tag).
//! The prefix names the format, so another can follow. Rotation: with `THREADCART_SECRETS_KEY_PREVIOUS`
//! set to the old key, values sealed with it still open, and start re-seals them with the new key (see
//! `merchants::pages::reseal_tokens`); once every instance runs the new key, the old one can go.
//!
//! Without a key, PostgreSQL (production, several instances) refuses to start; SQLite (one process, a
//! newcomer's `cargo run`) keeps a key made once in a file next to the database (`threadcart.db.key`,
//! mode 0600), so restarts still open what was sealed.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::SecretString;

/// The prefix of the stored format.
const V1: &str = "v1:";
/// XChaCha20-Poly1305's nonce: long enough to be drawn at random for every value.
const NONCE_BYTES: usize = 24;

/// A 32-byte encryption key (its `Debug` never shows it).
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key([REDACTED])")
    }
}

/// A key that is not 32 bytes of standard base64.
#[derive(Debug, thiserror::Error)]
#[error("must be 32 random bytes in standard base64, as `openssl rand -base64 32` prints")]
pub struct KeyError;

impl Key {
    /// Reads standard base64 of exactly 32 bytes.
    pub fn parse(text: &str) -> Result<Key, KeyError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError)?;
        Ok(Key(bytes.try_into().map_err(|_| KeyError)?))
    }

    /// 32 random bytes from the operating system.
    pub fn generate() -> Key {
        Key(random_bytes::<32>())
    }

    /// Standard base64, as `THREADCART_SECRETS_KEY` takes it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// Not in a sealed format (a plaintext value from before encryption, or a format this build does not know).
    #[error("the stored value is not encrypted")]
    NotSealed,
    /// Neither key opens it (a wrong `THREADCART_SECRETS_KEY`, or a value changed in the database).
    #[error(
        "the stored value does not decrypt with THREADCART_SECRETS_KEY (nor THREADCART_SECRETS_KEY_PREVIOUS): \
         is it the key it was encrypted with?"
    )]
    WrongKey,
}

/// A value as stored: `v1:` + base64(nonce || ciphertext and tag). Only [`Secrets::open`] makes a secret of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// A value read from the database.
    pub fn from_stored(stored: String) -> Sealed {
        Sealed(stored)
    }

    /// What to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which key opened a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    Current,
    Previous,
}

struct Ciphers {
    current: XChaCha20Poly1305,
    previous: Option<XChaCha20Poly1305>,
}

/// Seals and opens secrets with the current key (and opens with the previous one during a rotation).
#[derive(Clone)]
pub struct Secrets(Arc<Ciphers>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets([REDACTED])")
    }
}

impl Secrets {
    /// Seals with `current`; opens with `current`, then `previous`.
    pub fn new(current: &Key, previous: Option<&Key>) -> Secrets {
        Secrets(Arc::new(Ciphers {
            current: current.cipher(),
            previous: previous.map(Key::cipher),
        }))
    }

    /// The keys of the database at `database_url`: `given`, else the one [`key_for_database`] finds, and
    /// the `previous` one still read.
    pub fn for_database(
        given: Option<&Key>,
        previous: Option<&Key>,
        database_url: &str,
    ) -> anyhow::Result<Secrets> {
        let key = key_for_database(given, database_url)?;
        Ok(Secrets::new(&key, previous))
    }

    /// Seals `plaintext` with the current key, under a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> Sealed {
        let nonce = random_bytes::<NONCE_BYTES>();
        // XChaCha20-Poly1305 fails only for plaintexts beyond 256 GiB; tokens are at most 1000 characters.
        let ciphertext = self
            .0
            .current
            .encrypt(&XNonce::from(nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Sealed(format!("{V1}{}", STANDARD.encode(bytes)))
    }

    /// The secret a sealed value holds.
    pub fn open(&self, sealed: &Sealed) -> Result<SecretString, SecretsError> {
        self.open_str(&sealed.0)
            .map(|(plaintext, _)| SecretString::from(plaintext))
    }

    /// What to store in place of `stored` so that the current key opens it: `Some` for a plaintext value
    /// (stored before encryption) or one only the previous key opens, `None` when it is sealed with the
    /// current key already. A sealed value neither key opens is an error.
    pub fn reseal(&self, stored: &str) -> Result<Option<Sealed>, SecretsError> {
        match self.open_str(stored) {
            Ok((_, Opener::Current)) => Ok(None),
            Ok((plaintext, Opener::Previous)) => Ok(Some(self.seal(&plaintext))),
            Err(SecretsError::NotSealed) => Ok(Some(self.seal(stored))),
            Err(e) => Err(e),
        }
    }

    fn open_str(&self, stored: &str) -> Result<(String, Opener), SecretsError> {
        let encoded = stored.strip_prefix(V1).ok_or(SecretsError::NotSealed)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SecretsError::WrongKey)?;
        if bytes.len() < NONCE_BYTES {
            return Err(SecretsError::WrongKey);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SecretsError::WrongKey)?;
        let nonce = &XNonce::from(nonce);
        let opened = match self.0.current.decrypt(nonce, ciphertext) {
            Ok(plaintext) => (plaintext, Opener::Current),
            Err(_) => {
                let previous = self.0.previous.as_ref().ok_or(SecretsError::WrongKey)?;
                let plaintext = previous
                    .decrypt(nonce, ciphertext)
                    .map_err(|_| SecretsError::WrongKey)?;
                (plaintext, Opener::Previous)
            }
        };
        let (plaintext, opener) = opened;
        Ok((
            String::from_utf8(plaintext).map_err(|_| SecretsError::WrongKey)?,
            opener,
        ))
    }
}

/// Opens a value a query read (for the reads that hand a token on as text): one that does not open is
/// reported as a row that cannot be read.
pub fn open_stored(secrets: &Secrets, stored: String) -> diesel::QueryResult<String> {
    secrets
        .open(&Sealed(stored))
        .map(|token| secrecy::ExposeSecret::expose_secret(&token).to_owned())
        .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
}

/// The current key: `THREADCART_SECRETS_KEY`; without it, SQLite's key file (made on first use) and an
/// error on PostgreSQL.
pub fn key_for_database(given: Option<&Key>, url: &str) -> anyhow::Result<Key> {
    if let Some(key) = given {
        return Ok(key.clone());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "THREADCART_SECRETS_KEY is not set: on PostgreSQL the key that encrypts Page and Conversions \
             API tokens must be given (generate one with `openssl rand -base64 32` and keep it safe)"
        );
    }
    match key_file(url) {
        Some(path) => file_key(&path),
        None => {
            tracing::warn!(
                "THREADCART_SECRETS_KEY is not set and the database is in memory: tokens are encrypted with \
                 a key that ends with this process"
            );
            Ok(Key::generate())
        }
    }
}

/// Where SQLite keeps its key: `<database file>.key`; `None` for an in-memory database.
pub fn key_file(database_url: &str) -> Option<PathBuf> {
    let path = crate::db::sqlite_path(database_url);
    if path.is_empty() || path == ":memory:" || path.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.key")))
}

/// The key in `path`, made (32 random bytes, readable by the owner only) when there is none.
fn file_key(path: &std::path::Path) -> anyhow::Result<Key> {
    let shown = path.display();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key = Key::generate();
            writeln!(file, "{}", key.to_base64())
                .map_err(|e| anyhow::anyhow!("cannot write the secrets key to {shown}: {e}"))?;
            tracing::warn!(
                key.file = %shown,
                "THREADCART_SECRETS_KEY is not set: tokens are encrypted with a key made in this file; keep it \
                 with the database (without it the stored tokens cannot be read), and set \
                 THREADCART_SECRETS_KEY in production"
            );
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the secrets key in {shown}: {e}"))?;
            let key = Key::parse(&text).map_err(|e| anyhow::anyhow!("the secrets key in {shown} {e}"))?;
            tracing::info!(key.file = %shown, "THREADCART_SECRETS_KEY is not set: using the key in this file");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("cannot create the secrets key file {shown}: {e}")),
    }
}

/// 256 random bits, hex-encoded.
pub fn random_secret() -> String {
    hex(&random_bytes::<32>())
}

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is unrecoverable for a service that mints keys.
    #[expect(clippy::expect_used, reason = "no safe way to continue without OS randomness")]
    getrandom::fill(&mut bytes).expect("the operating system's random source is unavailable");
    bytes
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secrets(previous: Option<&Key>) -> (Key, Secrets) {
        let key = Key::generate();
        let secrets = Secrets::new(&key, previous);
        (key, secrets)
    }

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_shows_none_of_it() {
        let (_, s) = secrets(None);

        let sealed = s.seal("EAAG-page-token");

        assert!(sealed.as_str().starts_with("v1:"));
        assert!(!sealed.as_str().contains("EAAG"));
        assert_ne!(sealed, s.seal("EAAG-page-token"), "a fresh nonce each time");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&s.open(&sealed).unwrap()),
            "EAAG-page-token"
        );
    }

    #[test]
    fn another_key_or_a_changed_byte_does_not_open() {
        let (_, s) = secrets(None);
        let (_, other) = secrets(None);
        let sealed = s.seal("EAAG-page-token");
        let mut tampered = sealed.as_str().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });

        assert_eq!(other.open(&sealed).unwrap_err(), SecretsError::WrongKey);
        assert!(s.open(&Sealed::from_stored(tampered)).is_err());
        assert_eq!(
            s.open(&Sealed::from_stored("EAAG-plain".into())).unwrap_err(),
            SecretsError::NotSealed
        );
    }

    #[test]
    fn reseal_moves_plaintext_and_previous_key_values_to_the_current_key_and_leaves_the_rest() {
        let (old_key, old) = secrets(None);
        let new_key = Key::generate();
        let new = Secrets::new(&new_key, Some(&old_key));
        let by_old = old.seal("t1");
        let by_new = new.seal("t2");

        let moved = new.reseal(by_old.as_str()).unwrap().unwrap();
        let plain = new.reseal("t3").unwrap().unwrap();

        assert_eq!(new.reseal(by_new.as_str()).unwrap(), None);
        assert_eq!(new.reseal(moved.as_str()).unwrap(), None);
        let new_alone = Secrets::new(&new_key, None);
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&new_alone.open(&moved).unwrap()),
            "t1"
        );
        assert!(old.open(&moved).is_err());
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&new_alone.open(&plain).unwrap()),
            "t3"
        );
    }

    #[test]
    fn keys_are_32_bytes_of_standard_base64_and_never_printed() {
        let key = Key::generate();
        assert_eq!(Key::parse(&key.to_base64()).unwrap(), key);
        assert!(Key::parse("c2hvcnQ=").is_err());
        assert!(Key::parse("not base64!").is_err());
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    #[test]
    fn the_key_file_sits_next_to_a_sqlite_file_only() {
        assert_eq!(
            key_file("sqlite://threadcart.db"),
            Some(PathBuf::from("threadcart.db.key"))
        );
        assert_eq!(key_file("sqlite::memory:"), None);
    }
}
