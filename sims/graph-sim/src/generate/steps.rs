//! The steps of tenant generation, in the order `generate` runs them: users, groups,
//! memberships, nesting, devices, contacts and service principals. They share one seeded
//! random source and each draws from it in a fixed order, so a seed always gives the same
//! tenant: reordering steps or draws changes every generated tenant.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::words::{
    APPS, CODENAMES, DEPARTMENTS, FIRST, GROUP_WELL_KNOWN, GUEST_DOMAINS, LAST, OFFICES, REGIONS,
    TITLES,
};
use super::{Rng, TenantSpec, date, k, s, slug};
use crate::schema::{Key, ObjectKind, Props};
use crate::store::{Life, Tenant};

/// The tenant's domains and its directory extension, fixed before the first step.
pub(super) struct Domains {
    /// The initial domain, UPNs' suffix (`contoso.onmicrosoft.com`).
    pub(super) domain: String,
    /// The verified custom domain mail goes to (`contoso.com`).
    pub(super) mail_domain: String,
    pub(super) cost_center: Key,
}

/// One generated user's names.
struct Person<'a> {
    i: usize,
    first: &'a str,
    last: &'a str,
    local: &'a str,
}

/// Users: names from the word lists, unique UPNs, guests and members in the spec's ratios.
pub(super) fn users(
    rng: &mut Rng,
    spec: &TenantSpec,
    domains: &Domains,
    tenant: &mut Tenant,
) -> Vec<u32> {
    let mut taken: HashMap<String, u32> = HashMap::with_capacity(spec.users);
    let mut users = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let base = format!("{}.{}", slug(first), slug(last));
        let n = taken.entry(base.clone()).or_insert(0);
        *n += 1;
        let local = if *n == 1 { base } else { format!("{base}{n}") };

        let person = Person {
            i,
            first,
            last,
            local: &local,
        };
        let p = user_props(rng, spec, domains, &person);
        let id = rng.uuid();
        // Generated UPNs are unique by construction, so insertion cannot conflict.
        if let Ok(idx) = tenant.insert(id, ObjectKind::User, p, Life::Active) {
            users.push(idx);
        }
    }

    users
}

fn user_props(rng: &mut Rng, spec: &TenantSpec, domains: &Domains, person: &Person) -> Props {
    let Person { first, last, .. } = *person;
    let guest = rng.chance(spec.guest_ratio);
    let enabled = !rng.chance(spec.disabled_ratio);
    let (city, country, usage) = OFFICES[rng.below(OFFICES.len())];
    let mut p = Props::with_capacity(crate::store::user_extra_capacity());
    p.insert(k("displayName"), s(format!("{first} {last}")));
    p.insert(k("givenName"), s(first));
    p.insert(k("surname"), s(last));
    p.insert(k("accountEnabled"), Value::Bool(enabled));
    p.insert(k("createdDateTime"), s(date(rng, 2016, 9)));
    p.insert(k("preferredLanguage"), s("en-US"));
    if guest {
        guest_props(rng, domains, person, &mut p);
    } else {
        member_props(rng, spec, domains, person, (city, country, usage), &mut p);
    }
    p
}

/// A B2B guest: `#EXT#` UPN, mail at the guest's own domain.
fn guest_props(rng: &mut Rng, domains: &Domains, person: &Person, p: &mut Props) {
    let Domains { domain, .. } = domains;
    let local = person.local;
    let ext = rng.pick(GUEST_DOMAINS);
    let external = format!("{local}@{ext}");
    let nick = format!("{local}_{ext}#EXT#");
    p.insert(k("userPrincipalName"), s(format!("{nick}@{domain}")));
    p.insert(k("mail"), s(external.clone()));
    p.insert(k("mailNickname"), s(nick));
    p.insert(k("otherMails"), json!([external]));
    p.insert(k("proxyAddresses"), json!([format!("SMTP:{external}")]));
    p.insert(k("userType"), s("Guest"));
    p.insert(k("creationType"), s("Invitation"));
    let state = if rng.chance(0.8) {
        "Accepted"
    } else {
        "PendingAcceptance"
    };
    p.insert(k("externalUserState"), s(state));
    p.insert(k("companyName"), s(ext));
}

/// A member: UPN at the initial domain, mostly a mail address, office and job data, and for
/// some, on-premises sync and the cost-center extension.
fn member_props(
    rng: &mut Rng,
    spec: &TenantSpec,
    domains: &Domains,
    person: &Person,
    (city, country, usage): (&str, &str, &str),
    p: &mut Props,
) {
    let Domains {
        domain,
        mail_domain,
        cost_center,
    } = domains;
    let Person { i, local, .. } = *person;

    p.insert(k("userPrincipalName"), s(format!("{local}@{domain}")));
    p.insert(k("mailNickname"), s(local));
    p.insert(k("userType"), s("Member"));
    if !rng.chance(spec.without_mail_ratio) {
        let mail = format!("{local}@{mail_domain}");
        p.insert(k("proxyAddresses"), json!([format!("SMTP:{mail}")]));
        p.insert(k("mail"), s(mail));
    }
    let dept = rng.pick(DEPARTMENTS);
    p.insert(k("department"), s(dept));
    p.insert(k("jobTitle"), s(rng.pick(TITLES)));
    p.insert(k("companyName"), s("Contoso Ltd"));
    p.insert(
        k("officeLocation"),
        s(format!("{city} {}", 1 + rng.below(40))),
    );
    p.insert(k("city"), s(city));
    p.insert(k("country"), s(country));
    p.insert(k("usageLocation"), s(usage));
    if rng.chance(0.9) {
        p.insert(k("employeeId"), s(format!("{:06}", 100_000 + i)));
    }
    if rng.chance(0.7) {
        p.insert(
            k("businessPhones"),
            json!([format!("+1 425 555 {:04}", rng.below(10_000))]),
        );
    }
    if rng.chance(0.3) {
        p.insert(
            k("mobilePhone"),
            s(format!("+1 206 555 {:04}", rng.below(10_000))),
        );
    }

    if rng.chance(0.6) {
        on_premises_props(rng, mail_domain, person, p);
    }

    if rng.chance(0.5) {
        p.insert(
            cost_center.clone(),
            s(format!("{}", 1000 + rng.below(9000))),
        );
    }
}

/// Synced from on-premises AD.
fn on_premises_props(rng: &mut Rng, mail_domain: &str, person: &Person, p: &mut Props) {
    let Person {
        i,
        first,
        last,
        local,
    } = *person;

    // Synced from on-premises AD.
    let sam: String = format!(
        "{}{}",
        slug(first).chars().next().unwrap_or('x'),
        slug(last)
    )
    .chars()
    .take(18)
    .collect();
    p.insert(k("onPremisesSyncEnabled"), Value::Bool(true));
    p.insert(
        k("onPremisesSamAccountName"),
        s(format!("{sam}{}", i % 100)),
    );
    p.insert(
        k("onPremisesUserPrincipalName"),
        s(format!("{local}@{mail_domain}")),
    );
    p.insert(k("onPremisesDomainName"), s(format!("corp.{mail_domain}")));
    p.insert(
        k("onPremisesImmutableId"),
        s(crate::token::base64url(&rng.next_u64().to_le_bytes())),
    );
    // Stored sparse; rendering shows all fifteen attributes.
    let mut ext = serde_json::Map::new();
    ext.insert(
        "extensionAttribute1".into(),
        s(format!("CC-{:04}", rng.below(10_000))),
    );
    if rng.chance(0.5) {
        ext.insert(
            "extensionAttribute2".into(),
            s(rng.pick(&["FTE", "Contractor", "Vendor"])),
        );
    }
    if rng.chance(0.2) {
        ext.insert("extensionAttribute10".into(), s(rng.pick(REGIONS)));
    }
    p.insert(k("onPremisesExtensionAttributes"), Value::Object(ext));
}

/// Group names: well-known ones first, then made-up ones, and the spec's deliberate duplicates.
pub(super) fn group_names(rng: &mut Rng, spec: &TenantSpec) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(spec.groups);
    let mut used: HashMap<String, usize> = HashMap::new();
    for i in 0..spec.groups {
        let name = if let Some(n) = GROUP_WELL_KNOWN.get(i) {
            (*n).to_owned()
        } else {
            match rng.below(4) {
                0 => format!("{} {}", rng.pick(DEPARTMENTS), rng.pick(REGIONS)),
                1 => format!("Project {}", rng.pick(CODENAMES)),
                2 => format!("{} - {}", rng.pick(DEPARTMENTS), rng.pick(CODENAMES)),
                _ => format!(
                    "SG-{}-{}",
                    slug(rng.pick(DEPARTMENTS)).to_uppercase(),
                    rng.pick(REGIONS)
                ),
            }
        };
        let n = used.entry(name.clone()).or_insert(0);
        *n += 1;
        names.push(if *n == 1 { name } else { format!("{name} {n}") });
    }
    // Deliberate duplicates: later groups take an earlier group's name.
    for k in 0..spec
        .duplicate_group_names
        .min(spec.groups.saturating_sub(1))
    {
        let target = spec.groups - 1 - k;
        let source = rng.below(target);
        names[target] = names[source].clone();
    }
    names
}

/// Groups: security groups and Microsoft 365 (Unified) groups, some synced from on-premises.
pub(super) fn groups(
    rng: &mut Rng,
    domains: &Domains,
    tenant: &mut Tenant,
    names: Vec<String>,
) -> Vec<u32> {
    let mail_domain = &domains.mail_domain;
    let mut groups = Vec::with_capacity(names.len());

    for name in names {
        let mut p = Props::with_capacity(12);
        let nick: String = slug(&name.replace(' ', "-"));
        let unified = rng.chance(0.3);
        p.insert(k("displayName"), s(name.clone()));
        p.insert(k("description"), s(format!("{name} group")));
        p.insert(k("createdDateTime"), s(date(rng, 2016, 9)));
        p.insert(k("mailNickname"), s(nick.clone()));
        p.insert(
            k("securityIdentifier"),
            s(format!("S-1-12-1-{}", rng.next_u64() % 4_000_000_000)),
        );
        if unified {
            p.insert(k("groupTypes"), json!(["Unified"]));
            p.insert(k("mailEnabled"), Value::Bool(true));
            p.insert(k("securityEnabled"), Value::Bool(rng.chance(0.5)));
            p.insert(k("mail"), s(format!("{nick}@{mail_domain}")));
            p.insert(
                k("proxyAddresses"),
                json!([format!("SMTP:{nick}@{mail_domain}")]),
            );
            p.insert(
                k("visibility"),
                s(if rng.chance(0.7) { "Private" } else { "Public" }),
            );
        } else {
            p.insert(k("mailEnabled"), Value::Bool(false));
            p.insert(k("securityEnabled"), Value::Bool(true));
            if rng.chance(0.4) {
                p.insert(k("onPremisesSyncEnabled"), Value::Bool(true));
                p.insert(
                    k("onPremisesSamAccountName"),
                    s(nick.chars().take(20).collect::<String>()),
                );
            }
        }
        if let Ok(idx) = tenant.insert(rng.uuid(), ObjectKind::Group, p, Life::Active) {
            groups.push(idx);
        }
    }
    groups
}

// Memberships: Zipf-like group sizes summing to the target, members picked by a random
// stride coprime with the user count (distinct without rejection sampling).
pub(super) fn memberships(
    rng: &mut Rng,
    spec: &TenantSpec,
    tenant: &mut Tenant,
    users: &[u32],
    groups: &[u32],
) {
    let n_users = users.len();
    let n_groups = groups.len();
    if n_users > 0 && n_groups > 0 {
        let target = spec.memberships.min(n_users.saturating_mul(n_groups));
        let mut ranks: Vec<usize> = (0..n_groups).collect();
        for i in (1..n_groups).rev() {
            let j = rng.below(i + 1);
            ranks.swap(i, j);
        }
        // "All Employees" (the first group) is the largest.
        if let Some(pos) = ranks.iter().position(|r| *r == 0) {
            ranks.swap(0, pos);
        }
        let weights: Vec<f64> = ranks
            .iter()
            .map(|r| 1.0 / ((*r + 1) as f64).powf(0.8))
            .collect();
        let total_w: f64 = weights.iter().sum();
        let mut sizes: Vec<usize> = weights
            .iter()
            .map(|w| ((target as f64 * w / total_w) as usize).min(n_users))
            .collect();
        let mut remaining = target.saturating_sub(sizes.iter().sum());
        while remaining > 0 {
            let before = remaining;
            for size in sizes.iter_mut() {
                let add = (n_users - *size).min(remaining);
                *size += add;
                remaining -= add;
                if remaining == 0 {
                    break;
                }
            }
            if remaining == before {
                break;
            }
        }
        let mut edges = Vec::with_capacity(n_groups);
        for (g, size) in groups.iter().zip(sizes) {
            let offset = rng.below(n_users);
            let mut stride = 1 + rng.below(n_users);
            while gcd(stride, n_users) != 1 {
                stride += 1;
            }
            let members: Vec<u32> = (0..size)
                .map(|k| users[(offset + k * stride) % n_users])
                .collect();
            edges.push((*g, members));
        }
        tenant.bulk_members(edges);
    }
}

// Nested groups: chains of `nesting_depth` links, always from a lower to a higher index,
// so generated nesting is acyclic (cycles can be made through the control API).
pub(super) fn nesting(rng: &mut Rng, spec: &TenantSpec, tenant: &mut Tenant, groups: &[u32]) {
    let n_groups = groups.len();

    if spec.nesting_depth > 0 && n_groups >= 2 {
        let chains = (n_groups / 10).max(1);
        let len = (spec.nesting_depth + 1).min(n_groups);
        for _ in 0..chains {
            let mut picks: Vec<usize> = (0..len).map(|_| rng.below(n_groups)).collect();
            picks.sort_unstable();
            picks.dedup();
            for pair in picks.windows(2) {
                tenant.link(groups[pair[0]], groups[pair[1]]);
            }
        }
    }
}

/// Devices, each a member of one group.
pub(super) fn devices(rng: &mut Rng, spec: &TenantSpec, tenant: &mut Tenant, groups: &[u32]) {
    let n_groups = groups.len();

    for i in 0..spec.devices {
        let os = rng.pick(&["Windows", "MacMDM", "iOS", "Android"]);
        let p: Props = [
            (k("displayName"), s(format!("DESKTOP-{:05}", i + 1))),
            (k("deviceId"), s(rng.uuid())),
            (k("operatingSystem"), s(os)),
            (k("operatingSystemVersion"), s("10.0.22631")),
            (k("accountEnabled"), Value::Bool(true)),
            (k("trustType"), s("AzureAd")),
            (k("isCompliant"), Value::Bool(rng.chance(0.8))),
            (k("isManaged"), Value::Bool(true)),
        ]
        .into_iter()
        .collect();
        if let Ok(idx) = tenant.insert(rng.uuid(), ObjectKind::Device, p, Life::Active)
            && n_groups > 0
        {
            tenant.link(groups[rng.below(n_groups)], idx);
        }
    }
}

/// Organizational contacts, each a member of one group.
pub(super) fn contacts(rng: &mut Rng, spec: &TenantSpec, tenant: &mut Tenant, groups: &[u32]) {
    let n_groups = groups.len();

    for i in 0..spec.contacts {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let mail = format!(
            "{}.{}{}@{}",
            slug(first),
            slug(last),
            i,
            rng.pick(GUEST_DOMAINS)
        );
        let p: Props = [
            (k("displayName"), s(format!("{first} {last} (external)"))),
            (k("givenName"), s(first)),
            (k("surname"), s(last)),
            (k("mail"), s(mail.clone())),
            (k("proxyAddresses"), json!([format!("SMTP:{mail}")])),
        ]
        .into_iter()
        .collect();
        if let Ok(idx) = tenant.insert(rng.uuid(), ObjectKind::OrgContact, p, Life::Active)
            && n_groups > 0
        {
            tenant.link(groups[rng.below(n_groups)], idx);
        }
    }
}

/// Service principals: our own client app, then the enterprise apps with assignments.
pub(super) fn service_principals(
    rng: &mut Rng,
    spec: &TenantSpec,
    tenant: &mut Tenant,
    client_id: &str,
    users: &[u32],
    groups: &[u32],
) {
    let (n_users, n_groups) = (users.len(), groups.len());

    let sp_props = |name: &str, app_id: &str, roles: Value| -> Props {
        [
            (k("displayName"), s(name)),
            (k("appDisplayName"), s(name)),
            (k("appId"), s(app_id)),
            (k("servicePrincipalType"), s("Application")),
            (k("accountEnabled"), Value::Bool(true)),
            (
                k("tags"),
                json!(["WindowsAzureActiveDirectoryIntegratedApp"]),
            ),
            (k("appRoles"), roles),
        ]
        .into_iter()
        .collect()
    };
    let own = tenant
        .insert(
            rng.uuid(),
            ObjectKind::ServicePrincipal,
            sp_props("idsync", client_id, json!([])),
            Life::Active,
        )
        .ok();
    for a in 0..spec.enterprise_apps {
        let name = APPS
            .get(a)
            .map(|n| (*n).to_owned())
            .unwrap_or_else(|| format!("Enterprise App {}", a + 1));
        let role_id = rng.uuid();
        let roles = json!([{
            "allowedMemberTypes": ["User"], "description": "User", "displayName": "User",
            "id": role_id, "isEnabled": true, "origin": "Application", "value": "User"
        }]);
        let app_id = rng.uuid();
        let Ok(sp) = tenant.insert(
            rng.uuid(),
            ObjectKind::ServicePrincipal,
            sp_props(&name, &app_id, roles),
            Life::Active,
        ) else {
            continue;
        };
        // Mostly the all-zero "default access" role; some assignments use the app's own role.
        for _ in 0..n_groups.min(3) {
            let role = rng.chance(0.3).then(|| role_id.clone());
            let g = groups[rng.below(n_groups)];
            tenant.add_assignment(sp, g, role, Some(assignment_id(rng)));
        }
        for _ in 0..n_users.min(20) {
            let role = rng.chance(0.3).then(|| role_id.clone());
            let u = users[rng.below(n_users)];
            tenant.add_assignment(sp, u, role, Some(assignment_id(rng)));
        }
        if a == 0
            && let Some(own) = own
        {
            tenant.add_assignment(sp, own, None, Some(assignment_id(rng)));
        }
    }
    // Our own app's service principal is also a member of a group, as happens with
    // group-based access for daemons.
    if let Some(own) = own
        && n_groups > 1
    {
        tenant.link(groups[n_groups - 1], own);
    }
}

fn assignment_id(rng: &mut Rng) -> String {
    let mut bytes = Vec::with_capacity(32);
    for _ in 0..4 {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    let mut id = crate::token::base64url(&bytes);
    id.truncate(43);
    id
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
