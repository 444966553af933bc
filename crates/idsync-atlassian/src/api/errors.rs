//! How a reply idsync did not expect becomes a [`TargetError`]: its kind (licence, read-only
//! directory, permission, conflict, outage) and the advice an administrator acts on. One place,
//! so that every product words the same refusal the same way.

use idsync_model::{TargetError, TargetErrorKind, TargetKind};

use super::{Api, Auth, Reply};

impl Api {
    pub fn err(&self, kind: TargetErrorKind, message: String, status: Option<u16>) -> TargetError {
        TargetError {
            kind,
            target: self.name.clone(),
            message,
            status,
        }
    }

    pub fn unsupported(&self, message: String) -> TargetError {
        self.err(TargetErrorKind::Unsupported, message, None)
    }

    /// The e-mail address `product` needs to `what` (create an account), or the refusal that
    /// says the source has none.
    pub fn required_email<'e>(
        &self,
        email: Option<&'e str>,
        what: &str,
        product: &str,
    ) -> Result<&'e str, TargetError> {
        email.filter(|e| !e.is_empty()).ok_or_else(|| {
            self.err(
                TargetErrorKind::Rejected,
                format!("cannot {what}: {product} requires an e-mail address and the source has none for this user; map `email` to an attribute every user has"),
                None,
            )
        })
    }

    pub fn malformed(&self, what: &str, detail: &str) -> TargetError {
        self.err(
            TargetErrorKind::MalformedResponse,
            format!("{what}: unexpected response: {detail}"),
            None,
        )
    }

    pub(super) fn unauthorized(&self, reply: &Reply) -> TargetError {
        // Bitbucket answers 401 both to credentials it does not accept and to an account that
        // authenticates but lacks the ADMIN permission its admin resources need (8.14 OpenAPI:
        // "The authenticated user does not have the ADMIN permission"); its text
        // ("Authentication failed" / "You are not permitted") tells them apart, so it is quoted.
        // [`Api::new`] refuses a Bitbucket token, so a Bitbucket target always signs in with
        // Basic authentication.
        if let (TargetKind::BitbucketDc, Auth::Basic { username, .. }) = (self.kind, &self.auth) {
            return self.err(
                TargetErrorKind::Unauthorized,
                format!(
                    "{} (bitbucket-dc) refused the account '{username}' of [[targets]] '{}' (HTTP 401: {}). Either the credentials are wrong (check `username` and `password`; HTTP access tokens are never accepted on Bitbucket's admin endpoints), or the account lacks the Admin or System admin global permission that user and group management needs (grant it in Administration > Global permissions).",
                    self.shown,
                    self.name,
                    reply.server_message().trim_end_matches(['.', ' '])
                ),
                Some(401),
            );
        }
        let credential = match (self.kind, &self.auth) {
            (TargetKind::AtlassianCloud, _) => {
                "the SCIM directory API key (`token`; not an org admin API key or site API token)"
            }
            (_, Auth::Bearer(_)) => "the personal access token (`token`)",
            (_, Auth::Basic { .. }) => "`username` and `password`",
        };
        self.err(
            TargetErrorKind::Unauthorized,
            format!(
                "{} ({}) refused the credentials (HTTP 401): {credential} of [[targets]] '{}' is wrong, expired or revoked. Create a new one for an administrator account and update the configuration.",
                self.shown, self.kind, self.name
            ),
            Some(401),
        )
    }

    /// Turns an unexpected reply into an error that says what failed, why, and what to do.
    /// `what` names the operation, e.g. "create user 'ada'".
    pub fn error(&self, reply: &Reply, what: &str) -> TargetError {
        let status = reply.status;
        let detail = reply.server_message();
        // Keywords are looked for outside quotes: servers quote the names they refuse, and a
        // user called 'licence-bot' must not turn a refusal into a licence problem.
        let lower = unquoted(&detail).to_lowercase();
        let read_only = ["read-only", "read only", "readonly", "not writable"]
            .iter()
            .any(|k| lower.contains(k));
        let licence = ["licen", "user limit", "seat"]
            .iter()
            .any(|k| lower.contains(k));
        // Jira and Bitbucket refuse a name already taken with a 400, not a 409: it is still a
        // conflict with what the target holds (idsync's picture of it is out of date), not a
        // malformed request.
        let taken = ["already exists", "already in use", "already taken"]
            .iter()
            .any(|k| lower.contains(k));
        let (kind, advice) = match status.as_u16() {
            402 => (TargetErrorKind::LicenceLimit, ADVICE_LICENCE),
            400 | 403 | 405 | 409 | 422 if read_only => {
                (TargetErrorKind::ReadOnlyDirectory, ADVICE_READ_ONLY)
            }
            400 | 403 if licence => (TargetErrorKind::LicenceLimit, ADVICE_LICENCE),
            403 if self.kind == TargetKind::BitbucketDc => {
                (TargetErrorKind::Forbidden, ADVICE_FORBIDDEN_BITBUCKET)
            }
            403 => (TargetErrorKind::Forbidden, ADVICE_FORBIDDEN),
            400 | 422 if taken => (TargetErrorKind::Conflict, ""),
            404 => (TargetErrorKind::NotFound, ""),
            409 => (TargetErrorKind::Conflict, ""),
            429 => (TargetErrorKind::RateLimited, ""),
            500..=599 => (
                TargetErrorKind::Unavailable,
                "The server failed; see its logs, then sync again.",
            ),
            _ => (TargetErrorKind::Rejected, ""),
        };
        let detail = detail.trim_end_matches(['.', ' ']);
        let mut message = format!("cannot {what}: HTTP {}: {detail}", status.as_u16());
        if !advice.is_empty() {
            message.push_str(". ");
            message.push_str(advice);
        }
        self.err(kind, message, Some(status.as_u16()))
    }
}

const ADVICE_LICENCE: &str = "No licence seat is left: free seats (deactivate or remove unused accounts) or raise the licence's user tier, then sync again";
const ADVICE_READ_ONLY: &str = "Users and groups here come from a read-only directory (LDAP/Crowd): make the change in that directory, or give idsync a writable directory";
const ADVICE_FORBIDDEN: &str = "The account behind the configured credentials lacks the permission: it needs (system) administrator rights";
/// Bitbucket's 403s on user management: a permission level below the one the change needs (an
/// Admin may not change a System admin, 8.14 OpenAPI on deleteUser), or credentials that are
/// not the administrator's idsync was meant to use.
const ADVICE_FORBIDDEN_BITBUCKET: &str = "Either the credentials are not those of the intended account (check `username` and `password`), or that account lacks the permission: it needs the Admin or System admin global permission, and System admin to change a System admin's account";

/// The text without the parts in single or double quotes. A quote opens only after a
/// non-alphanumeric character and closes only before one, so apostrophes ("server's") stay.
pub(super) fn unquoted(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).and_then(|j| chars.get(j));
        let after = chars.get(i + 1);
        match quote {
            Some(q) if c == q && !after.is_some_and(|a| a.is_alphanumeric()) => quote = None,
            Some(_) => {}
            None if (c == '\'' || c == '"') && !before.is_some_and(|b| b.is_alphanumeric()) => {
                quote = Some(c)
            }
            None => out.push(c),
        }
    }
    out
}
