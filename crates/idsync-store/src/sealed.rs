//! Secrets kept in the store, sealed: the client secrets, tokens and passwords of apps and
//! targets created through the admin API. The database file is backed up, copied for support
//! and read by other tools; a secret in it is encrypted so that a copy of the file alone gives
//! nothing away.
//!
//! XChaCha20-Poly1305 with a 24-byte random nonce per value (random nonces that long never
//! collide in practice, so no counter has to be kept), and additional data naming the row and
//! the field (`app:NAME:client_secret`): a sealed value copied into another row or field does
//! not open there. A sealed value is written `v1:` followed by the hex of nonce ‖ ciphertext;
//! the version leaves room for another algorithm or key later.
//!
//! The key (32 bytes) comes from, in order: `IDSYNC_SECRET_KEY` (64 hex characters),
//! `IDSYNC_SECRET_KEY_FILE` (a file holding 32 bytes or 64 hex characters), or the file
//! `secret.key` in the data directory, made (0600, 32 random bytes) the first time a secret is
//! sealed. It is never written to the store: the store and the key are backed up together and
//! kept apart.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// The environment variable that gives the key as 64 hex characters.
pub(crate) const KEY_ENV: &str = "IDSYNC_SECRET_KEY";
/// The environment variable that names a file holding the key.
pub(crate) const KEY_FILE_ENV: &str = "IDSYNC_SECRET_KEY_FILE";
/// The key file made in the data directory when neither variable is set.
pub(crate) const KEY_FILE_NAME: &str = "secret.key";

const VERSION: &str = "v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Poly1305's tag, appended to the ciphertext.
const TAG_LEN: usize = 16;

/// What can go wrong with the key or a sealed value. Messages name where the key came from
/// and what to do; none holds a key or a secret.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// `IDSYNC_SECRET_KEY` is not 64 hex characters.
    #[error(
        "{KEY_ENV} must be 64 hex characters (32 bytes, e.g. the output of `openssl rand -hex 32`); it has {len} characters, or some that are not hex digits"
    )]
    BadKeyVar {
        /// How many characters it has (the value itself is never shown).
        len: usize,
    },
    /// A key given as bytes is not 32 bytes long; holds the length it has.
    #[error("a secret key is 32 bytes; this one has {0}")]
    BadKeyLength(usize),
    /// The key file could not be read.
    #[error("cannot read the secret key file {} ({}): {source}", path.display(), origin_note(*from_env))]
    ReadKeyFile {
        /// The key file.
        path: PathBuf,
        /// Whether `IDSYNC_SECRET_KEY_FILE` named it (else it is the data directory's).
        from_env: bool,
        /// Why the file system refused.
        source: std::io::Error,
    },
    /// The key file holds neither 32 bytes nor 64 hex characters.
    #[error(
        "the secret key file {} ({}) must hold exactly 32 bytes, or 64 hex characters",
        path.display(), origin_note(*from_env)
    )]
    BadKeyFile {
        /// The key file.
        path: PathBuf,
        /// Whether `IDSYNC_SECRET_KEY_FILE` named it (else it is the data directory's).
        from_env: bool,
    },
    /// The data directory's key file could not be made when the first secret was sealed.
    #[error("cannot create the secret key file {}: {source}", path.display())]
    CreateKeyFile {
        /// The key file it tried to make.
        path: PathBuf,
        /// Why the file system refused.
        source: std::io::Error,
    },
    /// Sealed values exist but no key does: it was lost, or is given some other way.
    #[error(
        "the store holds secrets sealed with a key, but there is no key: {} does not exist and neither {KEY_ENV} nor {KEY_FILE_ENV} is set. Restore the key file from the backup taken with the store, or set {KEY_ENV} to the key",
        path.display()
    )]
    NoKey {
        /// The data directory's key file, which does not exist.
        path: PathBuf,
    },
    /// A stored value is not `v1:` followed by hex long enough to hold a nonce and a tag, or
    /// did not open to UTF-8 text.
    #[error("the sealed secret {what} is not in a form idsync reads (expected {VERSION}HEX)")]
    Malformed {
        /// Which secret: the row and field (`app:NAME:client_secret`).
        what: String,
    },
    /// The key is not the one the value was sealed with, or the value was altered.
    #[error(
        "cannot open the sealed secret {what} with the key from {origin}: it is not the key the secret was sealed with, or the store was altered. Use the key that was in use when the secret was stored (restore it from the backup taken with the store)"
    )]
    CannotOpen {
        /// Which secret: the row and field (`app:NAME:client_secret`).
        what: String,
        /// Where the key came from, so that the message says which key was tried.
        origin: String,
    },
    /// Encryption failed: the cipher refuses only a value too long for it, not expected in practice.
    #[error("cannot seal the secret {what}")]
    Seal {
        /// Which secret: the row and field (`app:NAME:client_secret`).
        what: String,
    },
}

fn origin_note(from_env: bool) -> &'static str {
    if from_env {
        "named by IDSYNC_SECRET_KEY_FILE"
    } else {
        "in the data directory"
    }
}

/// Where the key comes from. Its `Debug` does not show a key given in the environment.
#[derive(Clone)]
pub enum KeySource {
    /// `IDSYNC_SECRET_KEY`: the key itself, in hex.
    Env(String),
    /// `IDSYNC_SECRET_KEY_FILE`: a file an administrator (or a secret store) provides.
    File(PathBuf),
    /// `{data_dir}/secret.key`: idsync's own, made when first needed.
    DataDir(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env(_) => write!(f, "KeySource::Env([redacted])"),
            KeySource::File(p) => write!(f, "KeySource::File({})", p.display()),
            KeySource::DataDir(p) => write!(f, "KeySource::DataDir({})", p.display()),
        }
    }
}

impl KeySource {
    /// The source `env` names (the process environment in production), else the key file in
    /// `data_dir`. An empty variable counts as unset.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>, data_dir: &Path) -> KeySource {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(hex) = set(KEY_ENV) {
            KeySource::Env(hex)
        } else if let Some(path) = set(KEY_FILE_ENV) {
            KeySource::File(PathBuf::from(path))
        } else {
            KeySource::DataDir(data_dir.join(KEY_FILE_NAME))
        }
    }

    /// Where the key comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env(_) => KEY_ENV.to_owned(),
            KeySource::File(p) => format!("{} ({KEY_FILE_ENV})", p.display()),
            KeySource::DataDir(p) => p.display().to_string(),
        }
    }

    /// The key, which must exist: sealed values are to be opened. A missing data-directory
    /// key file is [`SealError::NoKey`] (making a new key would not open them).
    pub fn load(&self) -> Result<SecretKey, SealError> {
        match self {
            KeySource::DataDir(path) if !path.exists() => {
                Err(SealError::NoKey { path: path.clone() })
            }
            _ => self.load_or_create(),
        }
    }

    /// The key, making the data-directory key file if there is none yet: a secret is about
    /// to be sealed.
    pub fn load_or_create(&self) -> Result<SecretKey, SealError> {
        let origin = self.describe();
        let bytes = match self {
            KeySource::Env(hex) => {
                let hex = hex.trim();
                decode_hex(hex)
                    .filter(|b| b.len() == KEY_LEN)
                    .ok_or(SealError::BadKeyVar { len: hex.len() })?
            }
            KeySource::File(path) => read_key_file(path, true)?,
            KeySource::DataDir(path) => match read_key_file(path, false) {
                Err(SealError::ReadKeyFile { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    create_key_file(path)?
                }
                other => other?,
            },
        };
        SecretKey::from_bytes(&bytes, origin)
    }
}

fn read_key_file(path: &Path, from_env: bool) -> Result<Vec<u8>, SealError> {
    let bytes = std::fs::read(path).map_err(|source| SealError::ReadKeyFile {
        path: path.to_owned(),
        from_env,
        source,
    })?;
    if bytes.len() == KEY_LEN {
        return Ok(bytes);
    }
    // A key file written by hand or by a secret manager is more often hex, with a newline.
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| decode_hex(text.trim()))
        .filter(|b| b.len() == KEY_LEN)
        .ok_or_else(|| SealError::BadKeyFile {
            path: path.to_owned(),
            from_env,
        })
}

/// Makes a new key file, owner-only. Another process making it at the same moment wins, and
/// its key is read instead: two keys must never seal values of one store.
fn create_key_file(path: &Path) -> Result<Vec<u8>, SealError> {
    let failed = |source| SealError::CreateKeyFile {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::create_private_dir(dir).map_err(failed)?;
    }
    let mut key = vec![0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            #[cfg(unix)]
            {
                // The mode given at creation passes through the umask; set it exactly.
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(failed)?;
            }
            file.write_all(&key).map_err(failed)?;
            // The key must be on disk before anything sealed with it is.
            file.sync_all().map_err(failed)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key_file(path, false),
        Err(e) => Err(failed(e)),
    }
}

/// The key, ready to seal and open.
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
    origin: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(from {}, [redacted])", self.origin)
    }
}

impl SecretKey {
    /// A key of 32 bytes; `origin` says where it came from, for messages.
    pub fn from_bytes(bytes: &[u8], origin: impl Into<String>) -> Result<SecretKey, SealError> {
        let cipher = XChaCha20Poly1305::new_from_slice(bytes)
            .map_err(|_| SealError::BadKeyLength(bytes.len()))?;
        Ok(SecretKey {
            cipher,
            origin: origin.into(),
        })
    }

    /// Seals `plaintext`; `what` names the row and field (`app:NAME:client_secret`) and is
    /// bound to the result: it must be given again to open it.
    pub fn seal(&self, what: &str, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: what.as_bytes(),
                },
            )
            .map_err(|_| SealError::Seal {
                what: what.to_owned(),
            })?;
        let mut out = String::with_capacity(VERSION.len() + 2 * (NONCE_LEN + sealed.len()));
        out.push_str(VERSION);
        push_hex(&mut out, &nonce);
        push_hex(&mut out, &sealed);
        Ok(out)
    }

    /// Opens a value [`SecretKey::seal`] made for the same `what`.
    pub fn open(&self, what: &str, sealed: &str) -> Result<String, SealError> {
        let malformed = || SealError::Malformed {
            what: what.to_owned(),
        };
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(decode_hex)
            .filter(|b| b.len() >= NONCE_LEN + TAG_LEN)
            .ok_or_else(malformed)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed())?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: what.as_bytes(),
                },
            )
            .map_err(|_| SealError::CannotOpen {
                what: what.to_owned(),
                origin: self.origin.clone(),
            })?;
        String::from_utf8(plain).map_err(|_| malformed())
    }
}

/// Whether `value` is a sealed value (of any version idsync writes).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(VERSION)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes(&[byte; KEY_LEN], "a test key").expect("32 bytes")
    }

    #[test]
    fn a_sealed_value_opens_with_the_same_key_and_name_and_hides_the_secret() {
        let k = key(7);
        let sealed = k
            .seal("app:main:client_secret", "s3cr3t-value")
            .expect("seal");
        assert!(sealed.starts_with("v1:"), "{sealed}");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(
            k.open("app:main:client_secret", &sealed).expect("open"),
            "s3cr3t-value"
        );
        // A fresh nonce every time: the same secret seals differently.
        let again = k
            .seal("app:main:client_secret", "s3cr3t-value")
            .expect("seal");
        assert_ne!(sealed, again);
        assert_eq!(k.open("app:main:client_secret", "v1:").ok(), None);
    }

    #[test]
    fn a_wrong_key_does_not_open_and_says_where_the_key_came_from() {
        let sealed = key(1).seal("target:jira:token", "tok").expect("seal");
        let e = key(2)
            .open("target:jira:token", &sealed)
            .expect_err("wrong key");
        assert!(matches!(e, SealError::CannotOpen { .. }), "{e}");
        let message = e.to_string();
        assert!(message.contains("a test key") && message.contains("target:jira:token"));
    }

    #[test]
    fn a_tampered_value_does_not_open() {
        let k = key(3);
        let sealed = k.seal("target:jira:password", "pw").expect("seal");
        // Flip one bit of the last byte (the tag).
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(matches!(
            k.open("target:jira:password", &tampered),
            Err(SealError::CannotOpen { .. })
        ));
        assert!(matches!(
            k.open("target:jira:password", "v1:zz"),
            Err(SealError::Malformed { .. })
        ));
        assert!(matches!(
            k.open("target:jira:password", "plain"),
            Err(SealError::Malformed { .. })
        ));
    }

    #[test]
    fn a_value_moved_to_another_row_or_field_does_not_open() {
        let k = key(4);
        let sealed = k.seal("target:jira:token", "tok").expect("seal");
        for other in ["target:confluence:token", "target:jira:password"] {
            assert!(matches!(
                k.open(other, &sealed),
                Err(SealError::CannotOpen { .. })
            ));
        }
    }

    #[test]
    fn the_key_comes_from_the_variable_the_named_file_or_the_data_directory() {
        let dir = tempfile::tempdir().expect("dir");
        let hex = "00".repeat(31) + "ff";
        let env = |name: &str| (name == KEY_ENV).then(|| hex.clone());
        let source = KeySource::from_env(&env, dir.path());
        assert!(matches!(source, KeySource::Env(_)));
        assert!(!format!("{source:?}").contains("ff"));
        let from_var = source.load().expect("a valid key");
        let sealed = from_var.seal("x", "y").expect("seal");
        let same = SecretKey::from_bytes(&decode_hex(&hex).expect("hex"), "same").expect("key");
        assert_eq!(same.open("x", &sealed).expect("open"), "y");

        let bad = |name: &str| (name == KEY_ENV).then(|| "abc".to_owned());
        let e = KeySource::from_env(&bad, dir.path())
            .load()
            .expect_err("too short");
        assert!(e.to_string().contains(KEY_ENV), "{e}");

        let file = dir.path().join("given.key");
        std::fs::write(&file, format!("{hex}\n")).expect("write");
        let named = |name: &str| (name == KEY_FILE_ENV).then(|| file.display().to_string());
        let key = KeySource::from_env(&named, dir.path())
            .load()
            .expect("a hex key file");
        assert_eq!(key.open("x", &sealed).expect("open"), "y");
        std::fs::write(&file, "short").expect("write");
        let e = KeySource::from_env(&named, dir.path())
            .load()
            .expect_err("bad file");
        assert!(e.to_string().contains("given.key"), "{e}");

        // The data directory's key file: missing is an error when values must be opened, and
        // made (owner-only, 32 bytes) when one is to be sealed.
        let data = dir.path().join("data");
        let source = KeySource::from_env(&|_| None, &data);
        let e = source.load().expect_err("no key yet");
        assert!(matches!(e, SealError::NoKey { .. }));
        assert!(e.to_string().contains("secret.key") && e.to_string().contains(KEY_ENV));
        let made = source.load_or_create().expect("made");
        let path = data.join(KEY_FILE_NAME);
        assert_eq!(std::fs::read(&path).expect("read").len(), KEY_LEN);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sealed = made.seal("x", "z").expect("seal");
        let reread = source.load().expect("exists now");
        assert_eq!(reread.open("x", &sealed).expect("open"), "z");
        assert_eq!(
            source
                .load_or_create()
                .expect("kept")
                .open("x", &sealed)
                .expect("the same key"),
            "z"
        );
    }
}
