//! The admin API's bearer token. idsync makes it (32 random bytes), shows it once, and keeps
//! only its Argon2id hash in the store; `idsync admin-token rotate` replaces it.
//!
//! Argon2id is slow on purpose, too slow to run on every request of a console that polls: once
//! a token has been verified against the stored hash, it is remembered in memory with that hash
//! and later requests are compared to it in constant time. A new hash in the store (a rotation,
//! even by another process) forgets the remembered token at once.

use std::sync::{Arc, Mutex};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use idsync_store::Store;
use rand::RngCore;

use crate::error::ApiError;

/// What every admin token starts with, so that one found in a log or a paste is recognisable.
pub const TOKEN_PREFIX: &str = "idsync_";

/// Makes a new admin token and keeps its hash, replacing any earlier token. The token is
/// returned to be shown once; it is not kept anywhere.
pub async fn rotate(store: &Store) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", hex(&bytes));
    let hash = tokio::task::spawn_blocking({
        let token = token.clone();
        move || {
            Argon2::default()
                .hash_password(token.as_bytes())
                .map(|h| h.to_string())
        }
    })
    .await?
    .map_err(|e| anyhow::anyhow!("cannot hash the admin token: {e}"))?;
    store.set_admin_token_hash(&hash).await?;
    Ok(token)
}

/// Makes the first admin token if the store has none; `Some(token)` to show once.
pub async fn ensure_token(store: &Store) -> anyhow::Result<Option<String>> {
    if store.admin_token_hash().await?.is_some() {
        return Ok(None);
    }
    rotate(store).await.map(Some)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks bearer tokens against the stored hash.
#[derive(Clone)]
pub struct Verifier {
    store: Store,
    /// The last token that verified, with the hash it verified against.
    remembered: Arc<Mutex<Option<(String, String)>>>,
}

impl Verifier {
    /// A verifier of tokens against the hash kept in `store`.
    pub fn new(store: Store) -> Self {
        Verifier {
            store,
            remembered: Arc::default(),
        }
    }

    /// Whether `token` is the admin token now.
    pub async fn verify(&self, token: &str) -> Result<bool, ApiError> {
        let Some(hash) = self.store.admin_token_hash().await? else {
            return Ok(false);
        };
        if let Some((known_hash, known_token)) = self.lock().as_ref()
            && *known_hash == hash
        {
            return Ok(constant_time_eq(known_token.as_bytes(), token.as_bytes()));
        }
        let ok = tokio::task::spawn_blocking({
            let (token, hash) = (token.to_owned(), hash.clone());
            move || {
                PasswordHash::new(&hash).is_ok_and(|h| {
                    Argon2::default()
                        .verify_password(token.as_bytes(), &h)
                        .is_ok()
                })
            }
        })
        .await
        .map_err(ApiError::internal)?;
        if ok {
            *self.lock() = Some((hash, token.to_owned()));
        }
        Ok(ok)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, String)>> {
        self.remembered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Equal bytes, compared without stopping at the first difference (a timing side channel
/// would give the token away a byte at a time). The length is not secret: every token has
/// the same.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lets a request through only with `Authorization: Bearer <admin token>`.
pub async fn require_token(
    State(verifier): State<Verifier>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(header) = header else {
        return Err(ApiError::unauthorized(
            "this API needs the admin token: send `Authorization: Bearer <token>` (`idsync serve` printed it on first start; `idsync admin-token rotate` makes a new one)",
        ));
    };
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if token.is_empty() || !verifier.verify(token).await? {
        return Err(ApiError::unauthorized(
            "the bearer token is not the admin token (it may have been rotated): use the token `idsync admin-token rotate` printed last",
        ));
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_every_byte_is() {
        assert!(constant_time_eq(b"idsync_ab", b"idsync_ab"));
        assert!(!constant_time_eq(b"idsync_ab", b"idsync_ac"));
        assert!(!constant_time_eq(b"idsync_ab", b"idsync_a"));
    }

    #[tokio::test]
    async fn a_rotated_token_replaces_the_old_one_and_only_its_hash_is_kept() {
        let store = Store::open_url("sqlite::memory:").await.expect("store");
        assert_eq!(store.admin_token_hash().await.expect("read"), None);
        let first = ensure_token(&store)
            .await
            .expect("token")
            .expect("a new one");
        assert!(first.starts_with(TOKEN_PREFIX));
        assert_eq!(ensure_token(&store).await.expect("token"), None);
        let hash = store.admin_token_hash().await.expect("read").expect("kept");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(&first[TOKEN_PREFIX.len()..]));

        let verifier = Verifier::new(store.clone());
        assert!(verifier.verify(&first).await.expect("verify"));
        assert!(verifier.verify(&first).await.expect("verify, remembered"));
        assert!(!verifier.verify("idsync_wrong").await.expect("verify"));

        let second = rotate(&store).await.expect("rotate");
        assert_ne!(first, second);
        assert!(!verifier.verify(&first).await.expect("the old one"));
        assert!(verifier.verify(&second).await.expect("the new one"));
    }
}
