//! Checks of user and group rules, wherever they appear (an app's, or an override's).

use super::Checker;
use crate::locate::Seg;
use crate::schema::{GroupRules, LeaveAction, RegexReplace, UserRules};
use crate::validate::{attribute_hint, is_attribute_name, regex_message};

impl Checker<'_> {
    pub(super) fn check_user_rules(&mut self, base: &[Seg], rules: &UserRules) {
        let at = |rest: &[&str]| {
            let mut p = base.to_vec();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            p
        };
        if !is_attribute_name(&rules.username.attribute) {
            self.report(
                &at(&["username", "attribute"]),
                attribute_hint(&rules.username.attribute),
            );
        }
        for (j, name) in rules.username.fallback.iter().enumerate() {
            if !is_attribute_name(name) {
                let mut p = at(&["username", "fallback"]);
                p.push(Seg::Index(j));
                self.report(&p, attribute_hint(name));
            }
        }
        self.check_regexes(&at(&["username", "replace"]), &rules.username.replace);
        for (field, list) in [
            ("email", &rules.email),
            ("display_name", &rules.display_name),
        ] {
            if list.is_empty() {
                self.report(
                    &at(&[field]),
                    "names no attribute; list at least one, e.g. [\"mail\", \"userPrincipalName\"]",
                );
            }
            for (j, name) in list.iter().enumerate() {
                if !is_attribute_name(name) {
                    let mut p = at(&[field]);
                    p.push(Seg::Index(j));
                    self.report(&p, attribute_hint(name));
                }
            }
        }
        for (target_attr, source) in &rules.custom_attributes {
            if !is_attribute_name(source) {
                self.report(
                    &at(&["custom_attributes", target_attr]),
                    attribute_hint(source),
                );
            }
        }
        if !rules.delete {
            for (field, action) in [
                ("on_leave", rules.on_leave),
                ("on_disable", rules.on_disable),
            ] {
                if action == LeaveAction::Delete {
                    self.report(
                        &at(&[field]),
                        format!(
                            "is \"delete\" but `delete` is false; set `delete = true` in the same \
                             section to allow deleting accounts, or use {field} = \"deactivate\""
                        ),
                    );
                }
            }
        }
    }

    pub(super) fn check_group_rules(&mut self, base: &[Seg], rules: &GroupRules) {
        let at = |rest: &[&str]| {
            let mut p = base.to_vec();
            p.extend(rest.iter().map(|k| Seg::key(k)));
            p
        };
        for (field, list) in [
            ("include", &rules.on_the_fly.include),
            ("exclude", &rules.on_the_fly.exclude),
        ] {
            for (j, pattern) in list.iter().enumerate() {
                if let Err(e) = regex::Regex::new(pattern) {
                    let mut p = at(&["on_the_fly", field]);
                    p.push(Seg::Index(j));
                    self.report(&p, regex_message(pattern, &e));
                }
            }
        }
        self.check_regexes(&at(&["on_the_fly", "rename"]), &rules.on_the_fly.rename);
        for (j, m) in rules.manual.iter().enumerate() {
            let mut p = at(&["manual"]);
            p.push(Seg::Index(j));
            if m.source.trim().is_empty() {
                let mut q = p.clone();
                q.push(Seg::key("source"));
                self.report(
                    &q,
                    "is empty; give the source group's display name or object id",
                );
            }
            if m.targets.is_empty() || m.targets.iter().any(|t| t.trim().is_empty()) {
                let mut q = p.clone();
                q.push(Seg::key("targets"));
                self.report(&q, "must list one or more non-empty target group names");
            }
        }
    }

    pub(super) fn check_regexes(&mut self, base: &[Seg], list: &[RegexReplace]) {
        for (j, r) in list.iter().enumerate() {
            if let Err(e) = regex::Regex::new(&r.pattern) {
                let mut p = base.to_vec();
                p.push(Seg::Index(j));
                p.push(Seg::key("pattern"));
                self.report(&p, regex_message(&r.pattern, &e));
            }
        }
    }
}
