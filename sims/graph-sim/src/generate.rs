//! Deterministic tenant generation. The PRNG is a local SplitMix64 so that a seed gives the
//! same tenant on every platform and with every version of the `rand` crate.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::schema::{Key, ObjectKind, Props, intern};
use crate::store::{Credentials, Life, Tenant};

/// Shape of a generated tenant. All counts are exact except `memberships`, which is capped at
/// `users * groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSpec {
    pub seed: u64,
    pub users: usize,
    pub groups: usize,
    /// Target total of direct user → group memberships.
    pub memberships: usize,
    /// Length of chains of nested groups (0: no nesting).
    pub nesting_depth: usize,
    /// Share of users that are B2B guests (`#EXT#` UPN, userType Guest).
    pub guest_ratio: f64,
    pub disabled_ratio: f64,
    /// Share of member users with `mail` null.
    pub without_mail_ratio: f64,
    /// Groups that reuse another group's displayName.
    pub duplicate_group_names: usize,
    /// Enterprise apps (service principals) with user and group assignments.
    pub enterprise_apps: usize,
    /// Devices and org contacts, each put in one group (members that are not users).
    pub devices: usize,
    pub contacts: usize,
    /// Initial domain, e.g. `contoso.onmicrosoft.com`.
    pub tenant_domain: String,
}

impl Default for TenantSpec {
    /// A small tenant: 50 users, 10 groups — every feature present at least once.
    fn default() -> Self {
        TenantSpec {
            seed: 1,
            users: 50,
            groups: 10,
            memberships: 150,
            nesting_depth: 2,
            guest_ratio: 0.06,
            disabled_ratio: 0.06,
            without_mail_ratio: 0.06,
            duplicate_group_names: 1,
            enterprise_apps: 2,
            devices: 3,
            contacts: 2,
            tenant_domain: "contoso.onmicrosoft.com".to_owned(),
        }
    }
}

impl TenantSpec {
    /// A tenant of `users` users and `groups` groups, about 5 memberships per user.
    pub fn sized(users: usize, groups: usize) -> Self {
        TenantSpec {
            users,
            groups,
            memberships: users.saturating_mul(5).min(users.saturating_mul(groups)),
            nesting_depth: 3,
            duplicate_group_names: (groups / 100).max(usize::from(groups >= 2)),
            enterprise_apps: 3,
            devices: groups / 10,
            contacts: groups / 20,
            ..TenantSpec::default()
        }
    }
}

pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_5EED)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; 0 when `n == 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(crate) fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    pub(crate) fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }
}

/// Credentials derived from the seed: the same seed gives the same tenant id and secret.
pub(crate) fn credentials(seed: u64, domain: &str) -> (Credentials, String) {
    let mut rng = Rng::new(seed.wrapping_mul(31).wrapping_add(7));
    let tenant_id = rng.uuid();
    let client_id = rng.uuid();
    // Modern Entra secrets: 40 characters, a `Q~` marker, and `~ . _ -` among letters — the
    // `~` makes clients that forget to form-encode the secret fail visibly on some stacks.
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    let secret = format!(
        "{}8Q~{}",
        rng.chars(&SECRET[..62], 3),
        rng.chars(SECRET, 36)
    );
    let extension_app = rng.uuid();
    (
        Credentials {
            tenant_id,
            tenant_domain: domain.to_owned(),
            client_id,
            client_secret: secret,
        },
        extension_app,
    )
}

const FIRST: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Amara",
    "Ana",
    "Andrés",
    "Anja",
    "Arjun",
    "Astrid",
    "Ben",
    "Bianca",
    "Björn",
    "Carlos",
    "Chen",
    "Chloé",
    "Christie",
    "Daniel",
    "Debra",
    "Diego",
    "Dmitri",
    "Elena",
    "Emily",
    "Emre",
    "Fatima",
    "Felix",
    "François",
    "Gabriel",
    "Grady",
    "Hana",
    "Hannah",
    "Henrietta",
    "Ines",
    "Irvin",
    "Isaiah",
    "Ivan",
    "Jakub",
    "James",
    "Jana",
    "Javier",
    "Jiří",
    "Johanna",
    "Joni",
    "José",
    "Julia",
    "Kai",
    "Karin",
    "Kenji",
    "Lars",
    "Laura",
    "Lee",
    "Leila",
    "Lidia",
    "Liam",
    "Lucía",
    "Łukasz",
    "Lynne",
    "Malik",
    "Maria",
    "Mark",
    "Marta",
    "Megan",
    "Mei",
    "Miriam",
    "Mohammed",
    "Nadia",
    "Nestor",
    "Nina",
    "Noah",
    "Olga",
    "Omar",
    "Patti",
    "Paula",
    "Pradeep",
    "Priya",
    "Rafael",
    "Ravi",
    "Renée",
    "Rosa",
    "Sakura",
    "Sam",
    "Sara",
    "Sebastian",
    "Siobhán",
    "Sofia",
    "Søren",
    "Tariq",
    "Thomas",
    "Tomás",
    "Valentina",
    "Wei",
    "Yara",
    "Yusuf",
    "Zoë",
    "Zoltán",
];

const LAST: &[&str] = &[
    "Abara",
    "Adams",
    "Ahmed",
    "Andersen",
    "Bauer",
    "Becker",
    "Brown",
    "Castillo",
    "Chen",
    "Cohen",
    "Costa",
    "D'Angelo",
    "Dubois",
    "Dvořák",
    "Eriksson",
    "Fernández",
    "Fischer",
    "García",
    "Gonzalez",
    "Gupta",
    "Hansen",
    "Hernández",
    "Hoffmann",
    "Ivanova",
    "Jansen",
    "Johnson",
    "Jones",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Laurent",
    "Lee",
    "Lopez",
    "Martin",
    "Meyer",
    "Miller",
    "Moreau",
    "Müller",
    "Nakamura",
    "Nguyen",
    "Nielsen",
    "Novák",
    "O'Brien",
    "Okafor",
    "Olsen",
    "Patel",
    "Pereira",
    "Petrov",
    "Quinn",
    "Ramos",
    "Rossi",
    "Russo",
    "Sánchez",
    "Santos",
    "Schmidt",
    "Schneider",
    "Shah",
    "Silva",
    "Singh",
    "Smith",
    "Sousa",
    "Suzuki",
    "Takahashi",
    "Tanaka",
    "Taylor",
    "Thompson",
    "Van der Berg",
    "Vargas",
    "Wagner",
    "Wang",
    "Weber",
    "Williams",
    "Wilson",
    "Wójcik",
    "Yamamoto",
    "Yilmaz",
    "Young",
    "Zhang",
    "Zimmermann",
];

const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Human Resources",
    "Legal",
    "Operations",
    "Customer Success",
    "Product",
    "Research",
    "IT",
    "Support",
    "Procurement",
    "Design",
];

const TITLES: &[&str] = &[
    "Software Engineer",
    "Senior Software Engineer",
    "Engineering Manager",
    "Product Manager",
    "Account Executive",
    "Sales Manager",
    "Marketing Specialist",
    "Financial Analyst",
    "Accountant",
    "HR Business Partner",
    "Recruiter",
    "Counsel",
    "Operations Analyst",
    "Support Engineer",
    "Customer Success Manager",
    "Designer",
    "Research Scientist",
    "IT Administrator",
    "Director",
    "Vice President",
    "Intern",
    "Data Analyst",
];

const OFFICES: &[(&str, &str, &str)] = &[
    ("Seattle", "United States", "US"),
    ("New York", "United States", "US"),
    ("London", "United Kingdom", "GB"),
    ("Berlin", "Germany", "DE"),
    ("Paris", "France", "FR"),
    ("Madrid", "Spain", "ES"),
    ("Warsaw", "Poland", "PL"),
    ("Bangalore", "India", "IN"),
    ("Tokyo", "Japan", "JP"),
    ("São Paulo", "Brazil", "BR"),
    ("Sydney", "Australia", "AU"),
    ("Toronto", "Canada", "CA"),
];

const GUEST_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "fabrikam.com",
    "northwindtraders.com",
    "adatum.com",
    "partner.example.org",
];

const GROUP_WELL_KNOWN: &[&str] = &[
    "All Employees",
    "jira-software-users",
    "confluence-users",
    "bitbucket-users",
    "jira-administrators",
    "confluence-administrators",
    "Atlassian Admins",
    "Contractors",
];

const REGIONS: &[&str] = &["EMEA", "AMER", "APAC", "DACH", "Nordics", "LATAM"];
const CODENAMES: &[&str] = &[
    "Apollo", "Borealis", "Cascade", "Dorado", "Everest", "Falcon", "Gemini", "Helios", "Ion",
    "Juniper", "Kestrel", "Lumen", "Mercury", "Nimbus", "Orion", "Pegasus", "Quasar", "Raven",
    "Sirius", "Titan", "Umbra", "Vega", "Zephyr",
];

const APPS: &[&str] = &[
    "Atlassian Cloud",
    "Jira Data Center",
    "Confluence Data Center",
    "Bitbucket Data Center",
    "Salesforce",
    "ServiceNow",
    "Slack",
    "Zoom",
    "Workday",
    "GitHub Enterprise Cloud",
];

/// Lower-case ASCII form of a name for addresses: accents folded, apostrophes and spaces gone.
fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded: &str = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ą' => "a",
            'æ' => "ae",
            'ç' | 'ć' | 'č' => "c",
            'è' | 'é' | 'ê' | 'ë' | 'ę' | 'ě' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ł' => "l",
            'ñ' | 'ń' => "n",
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => "o",
            'ř' => "r",
            'ś' | 'š' => "s",
            'ß' => "ss",
            'ù' | 'ú' | 'û' | 'ü' | 'ű' | 'ů' => "u",
            'ý' | 'ÿ' => "y",
            'ź' | 'ż' | 'ž' => "z",
            c if c.is_ascii_alphanumeric() || c == '-' => {
                out.push(c);
                continue;
            }
            _ => continue,
        };
        out.push_str(folded);
    }
    out
}

fn date(rng: &mut Rng, from_year: u32, years: u32) -> String {
    format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        from_year + rng.below(years as usize) as u32,
        1 + rng.below(12),
        1 + rng.below(28),
        rng.below(24),
        rng.below(60),
        rng.below(60)
    )
}

/// A property key: generation uses literal names, so no lookup in the schema is needed.
const fn k(name: &'static str) -> Key {
    std::borrow::Cow::Borrowed(name)
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

pub(crate) fn generate(spec: &TenantSpec) -> Tenant {
    let mut rng = Rng::new(spec.seed);
    let (creds, extension_app) = credentials(spec.seed, &spec.tenant_domain);
    let domain = spec.tenant_domain.clone();
    // The verified custom domain mail goes to: contoso.onmicrosoft.com → contoso.com.
    let mail_domain = match domain.split_once(".onmicrosoft.com") {
        Some((name, _)) => format!("{name}.com"),
        None => domain.clone(),
    };
    let cost_center: Key = intern(&format!(
        "extension_{}_costCenter",
        extension_app.replace('-', "")
    ));
    let total = spec.users + spec.groups + spec.devices + spec.contacts + spec.enterprise_apps + 1;
    let mut tenant = Tenant::new(creds.clone(), extension_app).with_capacity(total);

    let mut taken: HashMap<String, u32> = HashMap::with_capacity(spec.users);
    let mut user_idx = Vec::with_capacity(spec.users);
    for i in 0..spec.users {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let base = format!("{}.{}", slug(first), slug(last));
        let n = taken.entry(base.clone()).or_insert(0);
        *n += 1;
        let local = if *n == 1 { base } else { format!("{base}{n}") };
        let guest = rng.chance(spec.guest_ratio);
        let enabled = !rng.chance(spec.disabled_ratio);
        let (city, country, usage) = OFFICES[rng.below(OFFICES.len())];
        let mut p = Props::with_capacity(crate::store::user_extra_capacity());
        p.insert(k("displayName"), s(format!("{first} {last}")));
        p.insert(k("givenName"), s(first));
        p.insert(k("surname"), s(last));
        p.insert(k("accountEnabled"), Value::Bool(enabled));
        p.insert(k("createdDateTime"), s(date(&mut rng, 2016, 9)));
        p.insert(k("preferredLanguage"), s("en-US"));
        if guest {
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
        } else {
            p.insert(k("userPrincipalName"), s(format!("{local}@{domain}")));
            p.insert(k("mailNickname"), s(local.clone()));
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
            if rng.chance(0.5) {
                p.insert(
                    cost_center.clone(),
                    s(format!("{}", 1000 + rng.below(9000))),
                );
            }
        }
        let id = rng.uuid();
        // Generated UPNs are unique by construction, so insertion cannot conflict.
        if let Ok(idx) = tenant.insert(id, ObjectKind::User, p, Life::Active) {
            user_idx.push(idx);
        }
    }

    // Groups.
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
    let mut group_idx = Vec::with_capacity(spec.groups);
    for name in names {
        let mut p = Props::with_capacity(12);
        let nick: String = slug(&name.replace(' ', "-"));
        let unified = rng.chance(0.3);
        p.insert(k("displayName"), s(name.clone()));
        p.insert(k("description"), s(format!("{name} group")));
        p.insert(k("createdDateTime"), s(date(&mut rng, 2016, 9)));
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
            group_idx.push(idx);
        }
    }

    // Memberships: Zipf-like group sizes summing to the target, members picked by a random
    // stride coprime with the user count (distinct without rejection sampling).
    let n_users = user_idx.len();
    let n_groups = group_idx.len();
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
        for (g, size) in group_idx.iter().zip(sizes) {
            let offset = rng.below(n_users);
            let mut stride = 1 + rng.below(n_users);
            while gcd(stride, n_users) != 1 {
                stride += 1;
            }
            let members: Vec<u32> = (0..size)
                .map(|k| user_idx[(offset + k * stride) % n_users])
                .collect();
            edges.push((*g, members));
        }
        tenant.bulk_members(edges);
    }

    // Nested groups: chains of `nesting_depth` links, always from a lower to a higher index,
    // so generated nesting is acyclic (cycles can be made through the control API).
    if spec.nesting_depth > 0 && n_groups >= 2 {
        let chains = (n_groups / 10).max(1);
        let len = (spec.nesting_depth + 1).min(n_groups);
        for _ in 0..chains {
            let mut picks: Vec<usize> = (0..len).map(|_| rng.below(n_groups)).collect();
            picks.sort_unstable();
            picks.dedup();
            for pair in picks.windows(2) {
                tenant.link(group_idx[pair[0]], group_idx[pair[1]]);
            }
        }
    }

    // Devices and contacts, each a member of one group.
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
            tenant.link(group_idx[rng.below(n_groups)], idx);
        }
    }
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
            tenant.link(group_idx[rng.below(n_groups)], idx);
        }
    }

    // Service principals: our own client app, then the enterprise apps with assignments.
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
            sp_props("idsync", &creds.client_id, json!([])),
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
            let g = group_idx[rng.below(n_groups)];
            tenant.add_assignment(sp, g, role, Some(assignment_id(&mut rng)));
        }
        for _ in 0..n_users.min(20) {
            let role = rng.chance(0.3).then(|| role_id.clone());
            let u = user_idx[rng.below(n_users)];
            tenant.add_assignment(sp, u, role, Some(assignment_id(&mut rng)));
        }
        if a == 0
            && let Some(own) = own
        {
            tenant.add_assignment(sp, own, None, Some(assignment_id(&mut rng)));
        }
    }
    // Our own app's service principal is also a member of a group, as happens with
    // group-based access for daemons.
    if let Some(own) = own
        && n_groups > 1
    {
        tenant.link(group_idx[n_groups - 1], own);
    }
    tenant
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_fold_accents() {
        assert_eq!(slug("Łukasz"), "lukasz");
        assert_eq!(slug("O'Brien"), "obrien");
        assert_eq!(slug("Van der Berg"), "vanderberg");
        assert_eq!(slug("Søren"), "soren");
    }

    #[test]
    fn deterministic_and_exact_counts() {
        let spec = TenantSpec::sized(500, 40);
        let a = generate(&spec);
        let b = generate(&spec);
        assert_eq!(a.to_json(), b.to_json());
        assert_eq!(a.users.len(), 500);
        assert_eq!(a.groups.len(), 40);
        let direct_user_memberships: usize = a
            .groups
            .iter()
            .map(|g| {
                a.obj(*g)
                    .members
                    .iter()
                    .filter(|m| a.obj(**m).kind == ObjectKind::User)
                    .count()
            })
            .sum();
        assert_eq!(direct_user_memberships, spec.memberships);
    }
}
