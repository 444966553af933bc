//! Rules compiled from the config: how a source user becomes a target account (username, email,
//! display name, custom attributes) and which target groups it belongs in.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use idsync_config::{GroupRules, MappingMode, RegexReplace, UserRules};
use idsync_model::{SourceSnapshot, SourceUser, TargetKind};
use regex::Regex;

/// A rule that could not be compiled; `field` is the config path of the culprit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    /// Where in the configuration, e.g. `apps[0].users.username.replace[1].pattern`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

#[derive(Debug, Clone)]
struct CompiledReplace {
    pattern: Regex,
    with: String,
}

fn compile_replaces(list: &[RegexReplace], field: &str) -> Result<Vec<CompiledReplace>, RuleError> {
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            Regex::new(&r.pattern)
                .map(|pattern| CompiledReplace {
                    pattern,
                    with: r.with.clone(),
                })
                .map_err(|e| RuleError {
                    field: format!("{field}[{i}].pattern"),
                    message: format!("invalid regular expression {:?}: {e}", r.pattern),
                })
        })
        .collect()
}

fn compile_patterns(list: &[String], field: &str) -> Result<Vec<Regex>, RuleError> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            Regex::new(p).map_err(|e| RuleError {
                field: format!("{field}[{i}]"),
                message: format!("invalid regular expression {p:?}: {e}"),
            })
        })
        .collect()
}

/// User rules, ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledUserRules {
    /// The rules as configured; the runner reads `adopt_by` from them.
    pub config: UserRules,
    replace: Vec<CompiledReplace>,
    /// The kind of target these rules feed, when known: some products restrict usernames
    /// (see [`CompiledUserRules::for_target`]).
    target: Option<TargetKind>,
}

impl CompiledUserRules {
    /// Compiles the regular expressions of `config`; `field` is its config path, for errors.
    pub fn compile(config: &UserRules, field: &str) -> Result<Self, RuleError> {
        Ok(CompiledUserRules {
            replace: compile_replaces(
                &config.username.replace,
                &format!("{field}.username.replace"),
            )?,
            config: config.clone(),
            target: None,
        })
    }

    /// The rules as they apply to a target of `kind`: a product that takes lower-case
    /// usernames only (Confluence DC) gets them lower-cased whatever
    /// `users.username.lowercase` says, and [`CompiledUserRules::username_refusal`] knows what
    /// else it refuses.
    pub fn for_target(mut self, kind: TargetKind) -> Self {
        self.target = Some(kind);
        self
    }

    /// Why the target would refuse `username` for a new account (a character it does not
    /// allow), if it would: the planner skips that user with this as the reason, instead of
    /// sending a creation the product answers with 400.
    pub fn username_refusal(&self, username: &str) -> Option<String> {
        self.target.and_then(|kind| kind.username_refusal(username))
    }

    /// A note for plans when usernames are lower-cased for the target although the rules do
    /// not ask for it.
    pub fn username_note(&self) -> Option<String> {
        self.target
            .filter(|kind| kind.lowercase_usernames() && !self.config.username.lowercase)
            .map(|kind| format!("username lower-cased: {kind} takes lower-case usernames only"))
    }

    fn lowercase(&self) -> bool {
        self.config.username.lowercase || self.target.is_some_and(TargetKind::lowercase_usernames)
    }

    /// The target username for a source user, or `None` if none of the configured attributes
    /// has a value (the planner then skips the user and says why).
    pub fn username(&self, user: &SourceUser) -> Option<String> {
        let rule = &self.config.username;
        let raw = std::iter::once(&rule.attribute)
            .chain(rule.fallback.iter())
            .find_map(|attr| user.attr(attr).filter(|v| !v.trim().is_empty()))?;
        let mut name = raw.trim();
        if rule.strip_domain
            && let Some(at) = name.find('@')
        {
            name = &name[..at];
        }
        // The planner calls this for every user of a 100k-user directory: allocate once, and
        // again only when a replacement matched or a letter has to be lowered.
        let mut name = name.to_owned();
        for r in &self.replace {
            if let Cow::Owned(replaced) = r.pattern.replace_all(&name, r.with.as_str()) {
                name = replaced;
            }
        }
        if self.lowercase() {
            if name.is_ascii() {
                // Same result as `to_lowercase` for ASCII, without a second string.
                name.make_ascii_lowercase();
            } else {
                name = name.to_lowercase();
            }
        }
        (!name.is_empty()).then_some(name)
    }

    /// The e-mail address the rules give a source user (the first configured attribute it
    /// has). Only the unit tests call it; the planner borrows with `email_str`.
    pub fn email(&self, user: &SourceUser) -> Option<String> {
        self.email_str(user).map(str::to_owned)
    }

    /// [`Self::email`], borrowed from the user: the planner only copies it when it plans a change.
    pub(crate) fn email_str<'u>(&self, user: &'u SourceUser) -> Option<&'u str> {
        first_present(user, &self.config.email)
    }

    /// The display name the rules give a source user (the first configured attribute it has).
    /// Nothing calls it today; the planner borrows with `display_name_str`.
    pub fn display_name(&self, user: &SourceUser) -> Option<String> {
        self.display_name_str(user).map(str::to_owned)
    }

    /// [`Self::display_name`], borrowed from the user.
    pub(crate) fn display_name_str<'u>(&self, user: &'u SourceUser) -> Option<&'u str> {
        first_present(user, &self.config.display_name)
    }

    /// Target attribute name → value, for the attributes the source has.
    pub fn custom_attributes(&self, user: &SourceUser) -> BTreeMap<String, String> {
        self.config
            .custom_attributes
            .iter()
            .filter_map(|(target, source)| {
                user.attr(source).map(|v| (target.clone(), v.to_owned()))
            })
            .collect()
    }

    /// Every source attribute these rules read.
    pub fn source_attributes(&self) -> BTreeSet<String> {
        let c = &self.config;
        std::iter::once(&c.username.attribute)
            .chain(&c.username.fallback)
            .chain(&c.email)
            .chain(&c.display_name)
            .chain(c.custom_attributes.values())
            .cloned()
            .collect()
    }
}

fn first_present<'u>(user: &'u SourceUser, attributes: &[String]) -> Option<&'u str> {
    attributes
        .iter()
        .find_map(|a| user.attr(a).filter(|v| !v.trim().is_empty()))
        .map(str::trim)
}

/// Group rules, ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledGroupRules {
    /// The rules as configured.
    pub(crate) config: GroupRules,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    rename: Vec<CompiledReplace>,
}

/// A target group some user should be in, and why.
pub type GroupReasons = BTreeMap<String, String>;

impl CompiledGroupRules {
    /// Compiles the on-the-fly filters and renames of `config`; `field` is its config path, for
    /// errors.
    pub fn compile(config: &GroupRules, field: &str) -> Result<Self, RuleError> {
        let otf = &config.on_the_fly;
        Ok(CompiledGroupRules {
            include: compile_patterns(&otf.include, &format!("{field}.on_the_fly.include"))?,
            exclude: compile_patterns(&otf.exclude, &format!("{field}.on_the_fly.exclude"))?,
            rename: compile_replaces(&otf.rename, &format!("{field}.on_the_fly.rename"))?,
            config: config.clone(),
        })
    }

    /// The target group name for a source group under on-the-fly mapping, or `None` when the
    /// filters leave it out.
    pub fn on_the_fly_name(&self, source_name: &str) -> Option<String> {
        if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(source_name)) {
            return None;
        }
        if self.exclude.iter().any(|r| r.is_match(source_name)) {
            return None;
        }
        let mut name = source_name.to_owned();
        for r in &self.rename {
            name = r.pattern.replace_all(&name, r.with.as_str()).into_owned();
        }
        let name = name.trim().to_owned();
        (!name.is_empty()).then_some(name)
    }

    /// Resolves the mapping against a snapshot: for each source group that maps somewhere,
    /// the target groups it maps to. Also returns warnings (e.g. a manual mapping naming no
    /// source group, or a name shared by several groups).
    pub(crate) fn resolve(&self, snapshot: &SourceSnapshot) -> ResolvedMappings {
        let mut mappings = Vec::new();
        let mut warnings = Vec::new();
        let mut unresolved_targets = Vec::new();
        match self.config.mapping {
            MappingMode::None => {}
            MappingMode::Manual => {
                for (i, m) in self.config.manual.iter().enumerate() {
                    let matches = manual_matches(&m.source, snapshot);
                    if matches.is_empty() {
                        // Most often the group was renamed or deleted in Entra. Removing its
                        // members from the target groups would empty them on a mere rename, so
                        // the target groups are left alone until the mapping is put right.
                        warnings.push(format!(
                            "groups.manual[{i}]: no source group has the id or name {:?}; mapping skipped, and the memberships of its target groups ({}) are left as they are (nothing removed) until it is fixed: put the group's current name, or better its object id, in groups.manual[{i}].source",
                            m.source,
                            m.targets.join(", ")
                        ));
                        unresolved_targets.extend(m.targets.iter().cloned());
                    } else if matches.len() > 1 {
                        warnings.push(format!(
                            "groups.manual[{i}]: {} source groups are named {:?} ({}); all of them are mapped — use an object id to pick one",
                            matches.len(),
                            m.source,
                            matches.join(", ")
                        ));
                    }
                    for source_id in matches {
                        let source_name = snapshot
                            .groups
                            .get(&source_id)
                            .map(|g| g.display_name.clone())
                            .unwrap_or_default();
                        mappings.push(GroupMapping {
                            source_id,
                            source_name,
                            targets: m.targets.clone(),
                            create_missing: true,
                        });
                    }
                }
            }
            MappingMode::OnTheFly => {
                // Target group (lower case, as the products compare) → the source groups
                // feeding it: Entra allows duplicate names, and renames can meet.
                let mut feeding: BTreeMap<String, Vec<&str>> = BTreeMap::new();
                for group in snapshot.groups.values() {
                    if let Some(target) = self.on_the_fly_name(&group.display_name) {
                        feeding
                            .entry(idsync_model::name::name_key(&target))
                            .or_default()
                            .push(group.id.as_str());
                        mappings.push(GroupMapping {
                            source_id: group.id.clone(),
                            source_name: group.display_name.clone(),
                            targets: vec![target],
                            create_missing: self.config.on_the_fly.create_missing,
                        });
                    }
                }
                for (target, sources) in feeding.into_iter().filter(|(_, s)| s.len() > 1) {
                    let named: Vec<String> = sources
                        .iter()
                        .map(|id| {
                            let name = snapshot
                                .groups
                                .get(*id)
                                .map_or("", |g| g.display_name.as_str());
                            format!("{name:?} ({id})")
                        })
                        .collect();
                    warnings.push(format!(
                        "groups.on_the_fly: {} source groups all become target group {target:?} ({}); their members are merged into it — rename one in Entra, leave one out with on_the_fly.exclude, or map them with mapping = \"manual\"",
                        sources.len(),
                        named.join(", ")
                    ));
                }
            }
        }
        ResolvedMappings {
            mappings,
            warnings,
            unresolved_targets,
        }
    }
}

/// The source groups a manual mapping's `source` names: the group with that object id, else
/// every group with that display name (case-insensitively; Entra allows duplicates).
fn manual_matches(source: &str, snapshot: &SourceSnapshot) -> Vec<String> {
    if snapshot.groups.contains_key(source) {
        vec![source.to_owned()]
    } else {
        snapshot
            .groups
            .values()
            .filter(|g| g.display_name.eq_ignore_ascii_case(source))
            .map(|g| g.id.clone())
            .collect()
    }
}

/// What `idsync check` reports as errors of the manual mapping of `rules` (at `field`, e.g.
/// `apps[0].groups`) against a source read: a `source` naming no group (a sync would leave its
/// target groups alone until fixed) or several (a sync would map all of them), each with the fix.
pub fn manual_mapping_problems(
    rules: &GroupRules,
    field: &str,
    snapshot: &SourceSnapshot,
) -> Vec<String> {
    if rules.mapping != MappingMode::Manual {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for (i, m) in rules.manual.iter().enumerate() {
        let matches = manual_matches(&m.source, snapshot);
        match matches.len() {
            0 => problems.push(format!(
                "{field}.manual[{i}].source: no source group has the id or name {:?} (renamed or deleted?); a sync leaves the memberships of its target groups ({}) as they are until this is fixed: use the group's current name or, better, its object id",
                m.source,
                m.targets.join(", ")
            )),
            1 => {}
            n => problems.push(format!(
                "{field}.manual[{i}].source: {n} source groups are named {:?} ({}); a sync maps all of them: use the object id of the one you mean",
                m.source,
                matches.join(", ")
            )),
        }
    }
    problems
}

/// The group mapping as it applies to one source read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResolvedMappings {
    /// Each source group that maps somewhere, with its target groups.
    pub mappings: Vec<GroupMapping>,
    /// What the plan should say about the mapping (groups not found, shared names).
    pub warnings: Vec<String>,
    /// Target groups of manual mappings whose source group was not found: nothing is removed
    /// from them (the mapping cannot say who belongs there).
    pub unresolved_targets: Vec<String>,
}

/// One source group and the target groups its members belong in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMapping {
    /// The source group's object id.
    pub source_id: String,
    /// Its display name, for the reasons given in plans.
    pub source_name: String,
    /// Target group names its members belong in.
    pub targets: Vec<String>,
    /// Create a target group that is missing (otherwise skip it and say so).
    pub create_missing: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use idsync_config::{OnTheFly, UsernameRule};

    fn user(attrs: &[(&str, &str)]) -> SourceUser {
        SourceUser {
            id: "id-1".into(),
            enabled: true,
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn username_transforms_apply_in_order_with_fallback() {
        let rules = UserRules {
            username: UsernameRule {
                attribute: "onPremisesSamAccountName".into(),
                fallback: vec!["userPrincipalName".into()],
                lowercase: true,
                strip_domain: true,
                replace: vec![RegexReplace {
                    pattern: r"^(\w+)\.(\w+)$".into(),
                    with: "${2}_$1".into(),
                }],
            },
            ..UserRules::default()
        };
        let compiled = CompiledUserRules::compile(&rules, "apps[0].users").expect("compiles");
        let u = user(&[("userPrincipalName", "Ada.Lovelace@contoso.com")]);
        assert_eq!(compiled.username(&u).as_deref(), Some("lovelace_ada"));
        let u = user(&[
            ("onPremisesSamAccountName", "ALOVE"),
            ("userPrincipalName", "x@y"),
        ]);
        assert_eq!(compiled.username(&u).as_deref(), Some("alove"));
        assert_eq!(compiled.username(&user(&[])), None);
    }

    #[test]
    fn email_falls_back_to_upn() {
        let compiled = CompiledUserRules::compile(&UserRules::default(), "u").expect("compiles");
        let u = user(&[("userPrincipalName", "a@b.c")]);
        assert_eq!(compiled.email(&u).as_deref(), Some("a@b.c"));
        let u = user(&[("userPrincipalName", "a@b.c"), ("mail", "m@b.c")]);
        assert_eq!(compiled.email(&u).as_deref(), Some("m@b.c"));
    }

    #[test]
    fn bad_regex_names_the_field() {
        let rules = GroupRules {
            on_the_fly: OnTheFly {
                include: vec!["ok".into(), "(".into()],
                ..OnTheFly::default()
            },
            ..GroupRules::default()
        };
        let err = CompiledGroupRules::compile(&rules, "apps[1].groups").expect_err("bad regex");
        assert_eq!(err.field, "apps[1].groups.on_the_fly.include[1]");
    }

    #[test]
    fn on_the_fly_filters_and_renames() {
        let rules = GroupRules {
            mapping: MappingMode::OnTheFly,
            on_the_fly: OnTheFly {
                include: vec!["^sg-".into()],
                exclude: vec!["-admins$".into()],
                rename: vec![RegexReplace {
                    pattern: "^sg-(.*)$".into(),
                    with: "jira-$1".into(),
                }],
                create_missing: true,
            },
            ..GroupRules::default()
        };
        let c = CompiledGroupRules::compile(&rules, "g").expect("compiles");
        assert_eq!(c.on_the_fly_name("sg-devs").as_deref(), Some("jira-devs"));
        assert_eq!(c.on_the_fly_name("sg-admins"), None);
        assert_eq!(c.on_the_fly_name("devs"), None);
    }
}
