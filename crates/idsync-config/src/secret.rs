//! Secrets in the config: inline, `env:VAR` or `file:PATH`, resolved when the file is loaded.

use std::io::Read;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest `file:` secret read. Secrets are tokens and passwords, a few hundred bytes at
/// most; the bound keeps a wrong path (a log file, a disk image) from being read into memory
/// whole.
pub(crate) const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret value. Its `Debug` and `Serialize` never show it.
#[derive(Clone)]
pub struct Secret {
    /// What the file said: `env:VAR`, `file:PATH` or `inline`, for error messages.
    pub source: String,
    value: SecretString,
    /// An `env:`/`file:` reference read from a config and not resolved yet: the loader
    /// resolves every one, against the config's folder and environment, before handing the
    /// config out (see [`crate::load`]).
    pending: bool,
}

impl Secret {
    /// A secret given as its value (not read from a config): for tests and for callers that
    /// hold the value already.
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            source: "inline".into(),
            value: SecretString::from(value.into()),
            pending: false,
        }
    }

    /// A reference as the config file gives it, to be resolved by [`Secret::resolve_pending`].
    fn reference(raw: String) -> Self {
        Secret {
            source: raw,
            value: SecretString::from(String::new()),
            pending: true,
        }
    }

    /// Resolves a reference read from a config: `env:VAR` through `env`, `file:PATH` relative
    /// to `base_dir`. A value given inline (or resolved already) is left as it is.
    pub(crate) fn resolve_pending(
        &mut self,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        if self.pending {
            *self = Secret::resolve_in(&self.source, Some(base_dir), env)?;
        }
        Ok(())
    }

    /// The value itself, to send where it is needed; never to log.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// Resolves `env:VAR` / `file:PATH` references against the process environment and the
    /// working directory; inline values are kept.
    pub fn resolve(raw: &str) -> Result<Secret, String> {
        Secret::resolve_in(raw, None, &|name| std::env::var(name).ok())
    }

    /// Resolves `env:VAR` through `env` and `file:PATH` relative to `base_dir` (when given and
    /// the path is relative); inline values are kept.
    pub(crate) fn resolve_in(
        raw: &str,
        base_dir: Option<&std::path::Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secret, String> {
        if let Some(var) = raw.strip_prefix("env:") {
            let value = env(var).ok_or_else(|| {
                format!("environment variable {var} is not set (the secret is `env:{var}`); export it or put the value inline")
            })?;
            Ok(Secret {
                source: raw.into(),
                value: SecretString::from(value),
                pending: false,
            })
        } else if let Some(path) = raw.strip_prefix("file:") {
            let full = match base_dir {
                Some(dir) if std::path::Path::new(path).is_relative() => dir.join(path),
                _ => std::path::PathBuf::from(path),
            };
            let value = read_secret_file(&full)?;
            Ok(Secret {
                source: raw.into(),
                value: SecretString::from(value.trim_end_matches(['\n', '\r']).to_owned()),
                pending: false,
            })
        } else {
            Ok(Secret::new(raw))
        }
    }
}

/// Reads a `file:` secret: a regular file (symbolic links followed) of at most
/// [`MAX_SECRET_FILE_BYTES`], as UTF-8.
///
/// The type is checked before the file is opened: opening a FIFO blocks until someone writes
/// to it, and a device such as /dev/zero never ends. The read goes through `take()` all the
/// same, so a file that grows (or is swapped) between the check and the read stays bounded.
fn read_secret_file(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let fix = "point `file:` at a regular file that holds only the secret";
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    if !metadata.is_file() {
        let what = if metadata.is_dir() {
            "a directory"
        } else {
            "not a regular file (a device, FIFO or socket)"
        };
        return Err(format!("secret file {shown} is {what}; {fix}"));
    }
    let too_big = || {
        format!(
            "secret file {shown} is larger than {} KiB; {fix}",
            MAX_SECRET_FILE_BYTES / 1024
        )
    };
    if metadata.len() > MAX_SECRET_FILE_BYTES {
        return Err(too_big());
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read secret file {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| format!("secret file {shown} is not UTF-8 text; {fix}"))
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({}, [redacted])", self.source)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = deserializer.deserialize_str(SecretText)?;
        // References are resolved by the loader, which knows the config's folder and
        // environment; an inline value is the secret itself.
        Ok(if raw.starts_with("env:") || raw.starts_with("file:") {
            Secret::reference(raw)
        } else {
            Secret::new(raw)
        })
    }
}

/// Accepts a string only. serde's own type errors quote the value (`invalid type: integer
/// `12345`, expected a string`), which for `client_secret = 12345` would print the secret;
/// every other kind of value is refused here with a message that does not show it.
struct SecretText;

const NOT_TEXT: &str = "a secret must be a string: put an inline value in quotes, or give \
                        \"env:VAR\" or \"file:PATH\"";

impl SecretText {
    fn refuse<E: de::Error>(what: &str) -> E {
        E::custom(format!("invalid type: {what}; {NOT_TEXT}"))
    }
}

impl<'de> Visitor<'de> for SecretText {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<String, E> {
        Err(Self::refuse("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<String, E> {
        Err(Self::refuse("an integer"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<String, E> {
        Err(Self::refuse("a number"))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<String, E> {
        Err(Self::refuse("bytes"))
    }

    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Err(Self::refuse("nothing"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Err(Self::refuse("nothing"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::refuse("an array"))
    }

    // TOML dates and times arrive as maps too.
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        Err(Self::refuse("a table or date"))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.source == "inline" {
            serializer.serialize_str("[redacted]")
        } else {
            serializer.serialize_str(&self.source)
        }
    }
}
