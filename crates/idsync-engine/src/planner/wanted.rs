//! Phase 2: what the rules want. Group mappings are resolved once per plan into the target
//! groups each source group feeds (with the groups it is nested in); then, per source user,
//! [`Wanted::of_user`] gives the target groups that user belongs in, each with why.

use std::collections::{BTreeSet, HashSet};

use idsync_model::stored::as_index;

use super::index::{GroupIndex, group_by_slot};
use super::text::pieces;
use super::{FastMap, PlanInput, fast_map};

/// Why a user belongs in a target group.
#[derive(Clone, Copy)]
pub(super) enum GroupReason {
    /// The mapping with this number (its text is made once per mapping, not per member).
    SourceGroup(u32),
    AllUsers,
    NewUsers,
}

/// The target groups a user should be in: sorted ids, one reason each.
pub(super) type Groups = Vec<(u32, GroupReason)>;

/// What the rules want, worked out once per plan.
pub(super) struct Wanted<'a> {
    /// The mapping's own warnings (the first of a plan's warnings).
    pub(super) mapping_warnings: Vec<String>,
    /// Mapping number → the reason its memberships are given.
    pub(super) source_reasons: Vec<String>,
    /// Source group id → the target groups it feeds, by source group id.
    group_targets: Vec<(&'a str, Groups)>,
    pub(super) all_user_defaults: Vec<u32>,
    pub(super) new_user_defaults: Vec<u32>,
    slots: SourceSlots<'a>,
    /// Each user's source groups that map somewhere (positions in `group_targets`, in order):
    /// slot `s` has `feeds[feeds_start[s]..feeds_start[s + 1]]`.
    feeds_start: Vec<u32>,
    feeds: Vec<u32>,
    /// The slot's groups were given (to the first user in scope with that id).
    feeds_taken: Vec<bool>,
    /// The groups of the user being planned; reused from one user to the next.
    groups: Groups,
}

impl<'a> Wanted<'a> {
    /// `source_ids` is [`concat`](super::text::concat) of the source users' ids. Interns the
    /// target groups the rules name, after those of the target.
    pub(super) fn new(
        input: &'a PlanInput<'a>,
        source_ids: &'a str,
        index: &mut GroupIndex,
    ) -> Self {
        let group_rules = &input.groups.config;
        // Group mapping → the target groups each source group (with its nested groups) feeds.
        let resolved = input.groups.resolve(input.snapshot);
        let mappings = resolved.mappings;
        for t in &resolved.unresolved_targets {
            let id = index.intern(t);
            index.name_mut(id).unresolved = true;
        }
        let mut direct_targets: FastMap<&str, Groups> = fast_map(mappings.len());
        let mut source_reasons = Vec::with_capacity(mappings.len());
        for (i, m) in mappings.iter().enumerate() {
            let i = as_index(i);
            source_reasons.push(format!("member of source group {:?}", m.source_name));
            for t in &m.targets {
                let id = index.intern(t);
                let name = index.name_mut(id);
                name.mapped = true;
                name.may_create |= m.create_missing;
                direct_targets
                    .entry(m.source_id.as_str())
                    .or_default()
                    .push((id, GroupReason::SourceGroup(i)));
            }
        }
        let mut all_user_defaults = Vec::new();
        for g in &group_rules.default_groups_all_users {
            let id = index.intern(g);
            index.name_mut(id).may_create = true;
            all_user_defaults.push(id);
        }
        let mut new_user_defaults = Vec::new();
        for g in &group_rules.default_groups_new_users {
            let id = index.intern(g);
            let name = index.name_mut(id);
            name.may_create = true;
            name.new_user_default = true;
            new_user_defaults.push(id);
        }
        let group_targets = group_targets(input, direct_targets);
        let mut mapping_warnings = resolved.warnings;
        mapping_warnings.extend(hold_unknown_memberships(input, &group_targets, index));
        // Source users by object id (the same id twice, which a sane source never sends, shares
        // a slot, and the first of them in scope gets the groups).
        let users = || input.snapshot.users.values().map(|u| u.id.as_str());
        let slots = SourceSlots::new(source_ids, users());
        let (feeds_start, feeds) = feeds(input, &group_targets, &slots);
        let feeds_taken = vec![false; slots.len()];
        Wanted {
            mapping_warnings,
            source_reasons,
            group_targets,
            all_user_defaults,
            new_user_defaults,
            slots,
            feeds_start,
            feeds,
            feeds_taken,
            groups: Vec::new(),
        }
    }

    /// Target groups the plan must create if they are missing, before any user is planned
    /// (by group id).
    pub(super) fn needed(&self, index: &GroupIndex, import_groups: bool) -> Vec<bool> {
        let mut needed = vec![false; index.names.len()];
        for (id, name) in index.names.iter().enumerate() {
            if (import_groups && name.mapped) || self.all_user_defaults.contains(&as_index(id)) {
                needed[id] = true;
            }
        }
        for id in &self.new_user_defaults {
            needed[*id as usize] = true;
        }
        needed
    }

    /// The target groups the user at `position` in the snapshot, whose id is `id`, should be
    /// in.
    pub(super) fn of_user(&mut self, position: usize, id: &str) -> &[(u32, GroupReason)] {
        let groups = &mut self.groups;
        groups.clear();
        if let Some(slot) = self.slots.of_user(position, id) {
            let slot = slot as usize;
            if !self.feeds_taken[slot] {
                self.feeds_taken[slot] = true;
                let range = self.feeds_start[slot] as usize..self.feeds_start[slot + 1] as usize;
                for g in &self.feeds[range] {
                    groups.extend(self.group_targets[*g as usize].1.iter().copied());
                }
            }
        }
        groups.extend(
            self.all_user_defaults
                .iter()
                .map(|id| (*id, GroupReason::AllUsers)),
        );
        // Stable sort, then the first reason of each group is kept.
        groups.sort_by_key(|(id, _)| *id);
        groups.dedup_by_key(|(id, _)| *id);
        groups
    }

    /// The groups of [`Wanted::of_user`]'s user, now that an account is created for them:
    /// with the default groups for new users.
    pub(super) fn of_new_user(&mut self) -> &[(u32, GroupReason)] {
        let groups = &mut self.groups;
        groups.extend(
            self.new_user_defaults
                .iter()
                .map(|id| (*id, GroupReason::NewUsers)),
        );
        groups.sort_by_key(|(id, _)| *id);
        groups.dedup_by_key(|(id, _)| *id);
        groups
    }
}

/// Source group id → the target groups it feeds. A user in a nested group is in every group
/// above it: each source group feeds the targets of its ancestors too. Worked out once per
/// group, not once per user. By source group id: when two source groups feed one target group,
/// the reason given is that of the first of them by id.
fn group_targets<'a>(
    input: &'a PlanInput<'a>,
    direct_targets: FastMap<&str, Groups>,
) -> Vec<(&'a str, Groups)> {
    let mut group_targets: Vec<(&str, Groups)> = if input.nested_groups {
        let mut parents: FastMap<&str, Vec<&str>> = fast_map(input.snapshot.groups.len());
        for g in input.snapshot.groups.values() {
            for child in &g.group_members {
                parents
                    .entry(child.as_str())
                    .or_default()
                    .push(g.id.as_str());
            }
        }
        input
            .snapshot
            .groups
            .keys()
            .filter_map(|id| {
                let mut seen: HashSet<&str> = HashSet::new();
                let mut stack = vec![id.as_str()];
                let mut targets = Vec::new();
                while let Some(g) = stack.pop() {
                    if seen.insert(g) {
                        targets.extend(direct_targets.get(g).into_iter().flatten().copied());
                        stack.extend(parents.get(g).into_iter().flatten().copied());
                    }
                }
                (!targets.is_empty()).then_some((id.as_str(), targets))
            })
            .collect()
    } else {
        // Keyed by the snapshot's own id: a mapping's source group is one of its groups (one
        // that is not would feed no one).
        direct_targets
            .into_iter()
            .filter_map(|(id, targets)| {
                let (id, _) = input.snapshot.groups.get_key_value(id)?;
                Some((id.as_str(), targets))
            })
            .collect()
    };
    group_targets.sort_unstable_by(|a, b| a.0.cmp(b.0));
    group_targets
}

/// Source groups whose members could not be read (Entra: hidden membership without
/// Member.Read.Hidden): who belongs in the target groups they feed is unknown, so nobody is taken
/// out of those for a mapping's sake, as for a manual mapping whose group is missing. Marks those
/// target groups and says so.
fn hold_unknown_memberships(
    input: &PlanInput<'_>,
    group_targets: &[(&str, Groups)],
    index: &mut GroupIndex,
) -> Option<String> {
    if input.snapshot.membership_unknown.is_empty() {
        return None;
    }
    let mut held: Vec<u32> = group_targets
        .iter()
        .filter(|(group, _)| input.snapshot.membership_unknown.contains(*group))
        .flat_map(|(_, targets)| targets.iter().map(|(t, _)| *t))
        .collect();
    held.sort_unstable();
    held.dedup();
    for t in &held {
        index.name_mut(*t).unresolved = true;
    }
    if held.is_empty() {
        return None;
    }
    let names: Vec<String> = held
        .iter()
        .map(|t| format!("{:?}", index.name(*t).spelling))
        .collect();
    Some(format!(
        "target group(s) {} are fed by source groups whose members cannot be read \
         (hidden membership; the app needs Member.Read.Hidden): no membership is \
         removed from them until it can be read",
        names.join(", ")
    ))
}

/// Each source user's groups that map somewhere, grouped by user (see `Wanted::feeds`).
fn feeds(
    input: &PlanInput<'_>,
    group_targets: &[(&str, Groups)],
    slots: &SourceSlots<'_>,
) -> (Vec<u32>, Vec<u32>) {
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (g, (group_id, _)) in group_targets.iter().enumerate() {
        if let Some(group) = input.snapshot.groups.get(*group_id) {
            let g = as_index(g);
            slots.of_members(&group.user_members, |slot| pairs.push((slot, g)));
        }
    }
    group_by_slot(slots.len(), pairs)
}

/// Source users numbered by object id (the same id twice, which a sane source never sends,
/// shares a number).
struct SourceSlots<'s> {
    by_id: FastMap<&'s str, u32>,
    /// The ids are strictly increasing, as the snapshot's map (ordered by id) has them unless a
    /// key differs from its user's id: then a user's number is its position, no lookup needed.
    in_order: bool,
}

impl<'s> SourceSlots<'s> {
    fn new(concat: &'s str, ids: impl Iterator<Item = &'s str>) -> Self {
        let mut by_id: FastMap<&str, u32> = fast_map(ids.size_hint().0);
        let mut in_order = true;
        let mut last: Option<&str> = None;
        for id in pieces(concat, ids) {
            in_order &= last.is_none_or(|last| last < id);
            last = Some(id);
            let next = as_index(by_id.len());
            by_id.entry(id).or_insert(next);
        }
        SourceSlots { by_id, in_order }
    }

    fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The number of the user at `position` in the snapshot, whose id is `id`.
    fn of_user(&self, position: usize, id: &str) -> Option<u32> {
        if self.in_order {
            u32::try_from(position).ok()
        } else {
            self.by_id.get(id).copied()
        }
    }

    /// Calls `found` with the number of each member that is a user in the snapshot, in order.
    fn of_members(&self, members: &BTreeSet<String>, mut found: impl FnMut(u32)) {
        for member in members {
            if let Some(slot) = self.by_id.get(member.as_str()) {
                found(*slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use idsync_config::MappingMode;

    use super::super::fixture::Fixture;
    use super::*;

    /// The lower-case names of `groups`.
    fn names(index: &GroupIndex, groups: &[(u32, GroupReason)]) -> Vec<String> {
        groups
            .iter()
            .map(|(id, _)| index.name(*id).lower.clone())
            .collect()
    }

    #[test]
    fn a_nested_group_feeds_the_targets_of_the_groups_above_it() {
        let mut fx = Fixture::new()
            .source_user("u1", "ada", true)
            .source_group("g1", "eng", &[])
            .source_group("g2", "backend", &["u1"])
            .group_rules(|g| {
                g.mapping = MappingMode::OnTheFly;
                g.default_groups_all_users = vec!["everyone".into()];
            });
        fx.nested_groups = true;
        if let Some(eng) = fx.snapshot.groups.get_mut("g1") {
            eng.group_members.insert("g2".into());
        }
        fx.phases(|ctx, wanted, _| {
            // Interned after the target's groups, in the rules' order: mappings, then defaults.
            let groups = wanted.of_user(0, "u1").to_vec();
            assert_eq!(names(&ctx.index, &groups), ["eng", "backend", "everyone"]);
            assert!(matches!(groups[2].1, GroupReason::AllUsers));
        });
    }

    #[test]
    fn a_source_id_listed_twice_gets_its_groups_once() {
        // Two snapshot entries with one object id: the first planned gets the groups.
        let mut fx = Fixture::new()
            .source_user("a", "ada", true)
            .source_user("b", "ada2", true)
            .source_group("g1", "eng", &["u1"])
            .group_rules(|g| g.mapping = MappingMode::OnTheFly);
        for user in fx.snapshot.users.values_mut() {
            user.id = "u1".into();
        }
        fx.phases(|ctx, wanted, _| {
            assert_eq!(names(&ctx.index, wanted.of_user(0, "u1")), ["eng"]);
            assert!(wanted.of_user(1, "u1").is_empty());
        });
    }

    #[test]
    fn default_groups_are_needed_and_new_users_get_theirs_too() {
        let fx = Fixture::new()
            .source_user("u1", "ada", true)
            .group_rules(|g| {
                g.default_groups_all_users = vec!["everyone".into()];
                g.default_groups_new_users = vec!["newcomers".into()];
            });
        fx.phases(|ctx, wanted, p| {
            assert_eq!(p.needed, [true, true]);
            assert_eq!(names(&ctx.index, wanted.of_user(0, "u1")), ["everyone"]);
            let groups = wanted.of_new_user().to_vec();
            assert_eq!(names(&ctx.index, &groups), ["everyone", "newcomers"]);
            assert!(matches!(groups[1].1, GroupReason::NewUsers));
        });
    }
}
