//! In-memory directories: one per product, each with its own users, groups and knobs.
//!
//! Users are stored under their lower-cased username because all four products treat
//! usernames case-insensitively; memberships refer to the immutable user key so that a rename
//! keeps every membership, project lead and component lead intact, as it does in the products.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use serde_json::Value;

use crate::Product;
use crate::ratelimit::Bucket;

#[derive(Debug, Clone)]
pub(crate) struct UserRec {
    pub key: String,
    pub name: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    pub external_id: Option<String>,
    /// SCIM: every attribute of the resource beyond the ones above; other products: free-form.
    pub attributes: BTreeMap<String, Value>,
    /// Jira user properties.
    pub properties: BTreeMap<String, Value>,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Clone)]
pub(crate) struct GroupRec {
    pub name: String,
    /// SCIM group id (a UUID); other products identify groups by name only.
    pub id: String,
    pub external_id: Option<String>,
    /// Direct members, by user key. A hash set: finding a user's groups tests every group, and
    /// at 100k users a sorted set made that cost milliseconds per user shown. Listings sort.
    pub members: HashSet<String>,
    /// Jira nested groups: lower-cased names of child groups whose members count as ours.
    pub children: BTreeSet<String>,
    pub created: String,
    pub modified: String,
}

#[derive(Debug, Default)]
pub(crate) struct Dir {
    pub users: BTreeMap<String, UserRec>,
    pub by_key: HashMap<String, String>,
    pub groups: BTreeMap<String, GroupRec>,
    pub group_ids: HashMap<String, String>,
    pub seats: Option<usize>,
    pub read_only: bool,
    pub next_id: u64,
    /// What a user `filter` searches (see [`UserSearch`]): built on first use, then kept up
    /// to date with the users changed since.
    pub search: std::sync::Mutex<Option<UserSearch>>,
}

/// Every user's lower-cased username, display name and e-mail address, side by side in one
/// string, each closed by a NUL. A `filter` (Bitbucket's: any of the three containing it) is
/// one substring search over it instead of three comparisons per user: at 100k users the scan
/// held the simulator's lock for 20 ms on every look-up, stalling the other products' requests
/// as three separate servers never would. A changed user's entry is marked dead and the user
/// added again at the end; the whole is built again once most entries are dead.
#[derive(Debug, Default)]
pub(crate) struct UserSearch {
    text: String,
    /// Where each entry's part of `text` ends.
    ends: Vec<usize>,
    /// Each entry's user (its key in `Dir::users`), `None` once dead.
    names: Vec<Option<String>>,
    /// The live entry of each user.
    entry_of: HashMap<String, usize>,
    /// Users changed since their entry was made (dead now), to be added again.
    changed: BTreeSet<String>,
}

impl UserSearch {
    fn build(users: &BTreeMap<String, UserRec>) -> Self {
        let mut search = UserSearch::default();
        for (name, user) in users {
            search.add(name, user);
        }
        search
    }

    fn add(&mut self, name: &str, user: &UserRec) {
        for field in [&user.name, &user.display_name, &user.email] {
            self.text.push_str(&lower(field));
            self.text.push('\0');
        }
        self.ends.push(self.text.len());
        self.entry_of.insert(name.to_owned(), self.names.len());
        self.names.push(Some(name.to_owned()));
    }

    /// A user (by key in `Dir::users`) changed, was added, renamed or removed.
    fn touch(&mut self, name: &str) {
        if let Some(entry) = self.entry_of.remove(name)
            && let Some(slot) = self.names.get_mut(entry)
        {
            *slot = None;
        }
        self.changed.insert(name.to_owned());
    }

    /// Brings the entries of changed users up to date.
    fn refresh(&mut self, users: &BTreeMap<String, UserRec>) {
        if self.entry_of.len() * 2 < self.names.len() {
            *self = UserSearch::build(users);
            return;
        }
        for name in std::mem::take(&mut self.changed) {
            if let Some(user) = users.get(&name) {
                self.add(&name, user);
            }
        }
    }

    /// The keys in `Dir::users` of the users whose username, display name or e-mail contains
    /// `needle` (lower case), sorted as `Dir::users` is.
    fn matching(&self, needle: &str) -> Vec<String> {
        if needle.contains('\0') {
            return Vec::new();
        }
        let mut found: Vec<String> = if needle.is_empty() {
            self.entry_of.keys().cloned().collect()
        } else {
            memchr::memmem::find_iter(self.text.as_bytes(), needle.as_bytes())
                .filter_map(|at| {
                    let entry = self.ends.partition_point(|&end| end <= at);
                    self.names.get(entry).cloned().flatten()
                })
                .collect()
        };
        found.sort();
        found.dedup();
        found
    }
}

pub(crate) fn lower(s: &str) -> String {
    s.to_lowercase()
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Dir {
    pub fn user(&self, name: &str) -> Option<&UserRec> {
        self.users.get(&lower(name))
    }

    pub fn user_by_key(&self, key: &str) -> Option<&UserRec> {
        self.by_key.get(key).and_then(|n| self.users.get(n))
    }

    /// The users whose username, display name or e-mail contains `filter` (lower case), in
    /// order: Bitbucket's user `filter`, through [`UserSearch`].
    pub fn users_matching(&self, filter: &str) -> Vec<&UserRec> {
        let names = {
            let mut search = self.search.lock().unwrap_or_else(|e| e.into_inner());
            let search = search.get_or_insert_with(|| UserSearch::build(&self.users));
            search.refresh(&self.users);
            search.matching(filter)
        };
        names.iter().filter_map(|n| self.users.get(n)).collect()
    }

    /// Tells the search index that a user (by key in `users`) changed.
    fn touch(&mut self, name: &str) {
        let search = self.search.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(search) = search.as_mut() {
            search.touch(name);
        }
    }

    pub fn user_by_key_mut(&mut self, key: &str) -> Option<&mut UserRec> {
        let name = self.by_key.get(key)?.clone();
        // The caller changes the user through what this returns.
        self.touch(&name);
        self.users.get_mut(&name)
    }

    pub fn insert_user(&mut self, user: UserRec) {
        let name = lower(&user.name);
        self.touch(&name);
        if let Some(old) = self.users.get(&name)
            && old.key != user.key
        {
            let old_key = old.key.clone();
            self.remove_user(&old_key);
        }
        self.by_key.insert(user.key.clone(), name.clone());
        self.users.insert(name, user);
    }

    /// Removes a user and every direct membership of theirs.
    pub fn remove_user(&mut self, key: &str) -> Option<UserRec> {
        let name = self.by_key.remove(key)?;
        self.touch(&name);
        for group in self.groups.values_mut() {
            group.members.remove(key);
        }
        self.users.remove(&name)
    }

    /// Renames; `false` when another user already has the new name.
    pub fn rename_user(&mut self, key: &str, new_name: &str) -> bool {
        let Some(old) = self.by_key.get(key).cloned() else {
            return false;
        };
        let new_lower = lower(new_name);
        self.touch(&old);
        self.touch(&new_lower);
        if new_lower != old && self.users.contains_key(&new_lower) {
            return false;
        }
        if let Some(mut user) = self.users.remove(&old) {
            user.name = new_name.to_owned();
            user.modified = now_rfc3339();
            self.by_key.insert(key.to_owned(), new_lower.clone());
            self.users.insert(new_lower, user);
        }
        true
    }

    pub fn group(&self, name: &str) -> Option<&GroupRec> {
        self.groups.get(&lower(name))
    }

    pub fn group_mut(&mut self, name: &str) -> Option<&mut GroupRec> {
        self.groups.get_mut(&lower(name))
    }

    pub fn group_by_id(&self, id: &str) -> Option<&GroupRec> {
        self.group_ids.get(id).and_then(|n| self.groups.get(n))
    }

    pub fn insert_group(&mut self, name: &str, id: String) -> &mut GroupRec {
        let key = lower(name);
        let now = now_rfc3339();
        self.group_ids.insert(id.clone(), key.clone());
        self.groups.entry(key).or_insert_with(|| GroupRec {
            name: name.to_owned(),
            id,
            external_id: None,
            members: HashSet::new(),
            children: BTreeSet::new(),
            created: now.clone(),
            modified: now,
        })
    }

    pub fn remove_group(&mut self, name: &str) -> Option<GroupRec> {
        let key = lower(name);
        let group = self.groups.remove(&key)?;
        self.group_ids.remove(&group.id);
        for other in self.groups.values_mut() {
            other.children.remove(&key);
        }
        Some(group)
    }

    /// Direct members, sorted by username.
    pub fn direct_members(&self, group: &GroupRec) -> Vec<&UserRec> {
        let mut users: Vec<&UserRec> = group
            .members
            .iter()
            .filter_map(|k| self.user_by_key(k))
            .collect();
        users.sort_by_key(|u| lower(&u.name));
        users
    }

    /// Members of the group and of all its nested subgroups (cycle-safe), sorted by username.
    pub fn transitive_members(&self, group: &GroupRec) -> Vec<&UserRec> {
        let mut seen_groups = BTreeSet::new();
        let mut keys = BTreeSet::new();
        let mut stack = vec![lower(&group.name)];
        while let Some(name) = stack.pop() {
            if !seen_groups.insert(name.clone()) {
                continue;
            }
            if let Some(g) = self.groups.get(&name) {
                keys.extend(g.members.iter().cloned());
                stack.extend(g.children.iter().cloned());
            }
        }
        let mut users: BTreeMap<String, &UserRec> = BTreeMap::new();
        for key in keys {
            if let Some(u) = self.user_by_key(&key) {
                users.insert(lower(&u.name), u);
            }
        }
        users.into_values().collect()
    }

    /// Groups the user is a direct member of, sorted by name.
    pub fn groups_of(&self, key: &str) -> Vec<&GroupRec> {
        self.groups
            .values()
            .filter(|g| g.members.contains(key))
            .collect()
    }

    pub fn active_count(&self) -> usize {
        self.users.values().filter(|u| u.active).count()
    }

    pub fn next(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub id: u64,
    pub key: String,
    pub name: String,
    /// User key of the lead.
    pub lead: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Component {
    pub id: u64,
    pub project: String,
    pub name: String,
    pub lead: Option<String>,
}

/// A Confluence long-running task (only user deletion creates them).
#[derive(Debug, Clone)]
pub(crate) struct LongTask {
    pub user_key: String,
    pub username: String,
    pub polls: u32,
    pub done: bool,
    /// Set when the task is to fail half way (see `AtlassianSim::set_long_tasks_fail`), and
    /// once it has.
    pub fails: bool,
    pub failed: bool,
    pub started: Instant,
}

/// One request that reached the Bitbucket product, for checking against the OpenAPI document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// The path as received, e.g. `/bitbucket/rest/api/1.0/admin/users`.
    pub path: String,
    /// The path in the OpenAPI document's terms, e.g. `/api/latest/users/{userSlug}` (1.0 and
    /// latest are the same API); `None` when no simulated route matched.
    pub spec_path: Option<String>,
    /// Query parameters, in the order sent.
    pub query: Vec<(String, String)>,
    /// The JSON body, when there was one (`Value::String` of the raw text if it was not JSON).
    pub body: Option<Value>,
    /// The status the simulator answered with.
    pub status: u16,
}

pub(crate) struct State {
    pub jira: Dir,
    pub confluence: Dir,
    pub bitbucket: Dir,
    pub scim: Dir,
    pub projects: BTreeMap<String, Project>,
    pub components: BTreeMap<u64, Component>,
    pub next_project_id: u64,
    pub next_component_id: u64,
    pub tasks: HashMap<String, LongTask>,
    pub task_polls_to_complete: u32,
    /// Confluence user deletions started from now on fail half way.
    pub long_tasks_fail: bool,
    pub buckets: HashMap<Product, Bucket>,
    pub requests: Vec<RecordedRequest>,
    /// Versions set apart from each product's default (`versions::default_version`).
    pub versions: HashMap<Product, crate::versions::Version>,
}

impl State {
    pub fn new() -> Self {
        State {
            jira: Dir {
                next_id: 10099,
                ..Dir::default()
            },
            confluence: Dir::default(),
            bitbucket: Dir {
                next_id: 100,
                ..Dir::default()
            },
            scim: Dir::default(),
            projects: BTreeMap::new(),
            components: BTreeMap::new(),
            next_project_id: 10000,
            next_component_id: 10100,
            tasks: HashMap::new(),
            task_polls_to_complete: 2,
            long_tasks_fail: false,
            buckets: HashMap::new(),
            requests: Vec::new(),
            versions: HashMap::new(),
        }
    }

    /// The version `p` runs at.
    pub fn version(&self, p: Product) -> crate::versions::Version {
        self.versions
            .get(&p)
            .copied()
            .unwrap_or_else(|| crate::versions::default_version(p))
    }

    pub fn dir(&self, p: Product) -> &Dir {
        match p {
            Product::Jira => &self.jira,
            Product::Confluence => &self.confluence,
            Product::Bitbucket => &self.bitbucket,
            Product::Scim => &self.scim,
        }
    }

    pub fn dir_mut(&mut self, p: Product) -> &mut Dir {
        match p {
            Product::Jira => &mut self.jira,
            Product::Confluence => &mut self.confluence,
            Product::Bitbucket => &mut self.bitbucket,
            Product::Scim => &mut self.scim,
        }
    }

    /// A fresh user key in the product's own format.
    pub fn new_key(&mut self, p: Product) -> String {
        match p {
            // [U format] Jira DC 8+ gives new users keys like JIRAUSER10100.
            Product::Jira => format!("JIRAUSER{}", self.jira.next()),
            // Confluence user keys are 32 hex digits.
            Product::Confluence => uuid::Uuid::new_v4().simple().to_string(),
            // Bitbucket users have numeric ids.
            Product::Bitbucket => self.bitbucket.next().to_string(),
            Product::Scim => uuid::Uuid::new_v4().to_string(),
        }
    }
}
