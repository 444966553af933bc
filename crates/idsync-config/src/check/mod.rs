//! The checks serde cannot do, run on the loaded config: names unique and known, values in
//! range, regexes compile, credentials present and consistent, combinations that would do
//! something else than the config says. Each problem is placed at its field's line.
//!
//! By subject: [`target`] (each `[[targets]]` entry), [`app`] (each `[[apps]]` entry: credentials,
//! scope, overrides, guard) and [`rules`] (users, groups and regexes, wherever they appear).

mod app;
mod rules;
mod target;

use std::collections::BTreeSet;

use toml::Spanned;
use toml::de::DeTable;

use crate::env::Overrides;
use crate::locate::{Document, Seg, place};
use crate::problem::Problem;
use crate::schema::Config;
use crate::validate::is_loopback;
use idsync_model::redact::redact_url;

pub(crate) struct Checker<'a> {
    pub(crate) root: Option<Spanned<DeTable<'a>>>,
    pub(crate) doc: &'a Document,
    pub(crate) overrides: &'a Overrides,
    pub(crate) problems: Vec<Problem>,
    /// Same form as problems, but the file is used all the same.
    pub(crate) warnings: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, path: &[Seg], message: impl Into<String>) {
        let problem = self.locate(path, message.into());
        self.problems.push(problem);
    }

    fn warn(&mut self, path: &[Seg], message: impl Into<String>) {
        let warning = self.locate(path, message.into());
        self.warnings.push(warning);
    }

    fn locate(&self, path: &[Seg], message: String) -> Problem {
        place(self.root.as_ref(), self.doc, self.overrides, path, message)
    }

    /// A URL idsync sends credentials to must not carry credentials itself: they would show up
    /// in logs, messages and the store. `instead` says where they belong. False when refused.
    fn refuse_credentials_in(&mut self, path: &[Seg], url: &url::Url, instead: &str) -> bool {
        if url.username().is_empty() && url.password().is_none() {
            return true;
        }
        self.report(
            path,
            format!(
                "'{}' holds credentials (user:password@); remove them from the URL and {instead}",
                redact_url(url.as_str())
            ),
        );
        false
    }

    /// Plain http to another machine sends tokens and user data unencrypted: allowed (a lab,
    /// a TLS-terminating proxy on the same network), but warned about.
    fn warn_plain_http(&mut self, path: &[Seg], url: &url::Url) {
        if url.scheme() == "http" && !is_loopback(url) {
            self.warn(
                path,
                format!(
                    "'{}' is plain http: credentials and user data cross the network \
                     unencrypted; use https://",
                    redact_url(url.as_str())
                ),
            );
        }
    }

    pub(crate) fn check(&mut self, config: &Config) {
        if let Some(url) = &config.store.url {
            let at = [Seg::key("store"), Seg::key("url")];
            // The store opens SQLite only (idsync-store is built on sqlx's sqlite driver); a
            // PostgreSQL URL would pass here and fail at the first run, so it is refused now.
            if ["postgres:", "postgresql:"].iter().any(|p| {
                url.get(..p.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(p))
            }) {
                self.report(
                    &at,
                    format!(
                        "'{}' is a PostgreSQL URL, but idsync's store supports only SQLite for                          now; use sqlite://PATH, or leave `store.url` out for                          sqlite://DATA_DIR/idsync.db",
                        redact_url(url)
                    ),
                );
            } else if !url.starts_with("sqlite:") {
                self.report(
                    &at,
                    format!(
                        "'{}' is not a store URL; use sqlite://PATH",
                        redact_url(url)
                    ),
                );
            }
        }
        self.check_unique_names(
            "targets",
            config.targets.iter().map(|t| t.name.as_str()).collect(),
        );
        self.check_unique_names(
            "apps",
            config.apps.iter().map(|a| a.name.as_str()).collect(),
        );
        let target_names: BTreeSet<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        for (i, target) in config.targets.iter().enumerate() {
            self.check_target(i, target);
        }
        for (i, app) in config.apps.iter().enumerate() {
            self.check_app(i, app, &target_names);
            self.check_custom_attribute_names(i, app, &config.targets);
        }
        self.check_bitbucket_delete(config);
    }
}

/// `targets[i].field`.
pub(super) fn target_field(i: usize, field: &str) -> Vec<Seg> {
    vec![Seg::key("targets"), Seg::Index(i), Seg::key(field)]
}

/// `apps[i].` followed by `rest`.
pub(super) fn app_field(i: usize, rest: &[&str]) -> Vec<Seg> {
    let mut path = vec![Seg::key("apps"), Seg::Index(i)];
    path.extend(rest.iter().map(|k| Seg::key(k)));
    path
}
