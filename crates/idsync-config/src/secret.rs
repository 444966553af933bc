//! Secrets in the config: inline, `env:VAR` or `file:PATH`, resolved when the file is loaded.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value. Its `Debug` and `Serialize` never show it.
#[derive(Clone)]
pub struct Secret {
    /// What the file said: `env:VAR`, `file:PATH` or `inline`, for error messages.
    pub source: String,
    value: SecretString,
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret {
            source: "inline".into(),
            value: SecretString::from(value.into()),
        }
    }

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
    pub fn resolve_in(
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
            })
        } else if let Some(path) = raw.strip_prefix("file:") {
            let full = match base_dir {
                Some(dir) if std::path::Path::new(path).is_relative() => dir.join(path),
                _ => std::path::PathBuf::from(path),
            };
            let value = std::fs::read_to_string(&full)
                .map_err(|e| format!("cannot read secret file {}: {e}", full.display()))?;
            Ok(Secret {
                source: raw.into(),
                value: SecretString::from(value.trim_end_matches(['\n', '\r']).to_owned()),
            })
        } else {
            Ok(Secret::new(raw))
        }
    }
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
        let raw = String::deserialize(deserializer)?;
        crate::load::resolve_secret(&raw).map_err(serde::de::Error::custom)
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
