//! Deterministic tenant generation. The PRNG is a local SplitMix64 so that a seed gives the
//! same tenant on every platform and with every version of the `rand` crate.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schema::{Key, intern};
use crate::store::{Credentials, Tenant};

mod steps;
mod words;

use steps::Domains;

/// Shape of a generated tenant. All counts are exact except `memberships`, which is capped at
/// `users * groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSpec {
    /// Seed of the random generator: the same spec makes the same tenant, ids included.
    pub seed: u64,
    /// Users (members and guests).
    pub users: usize,
    /// Security groups, duplicates of names included.
    pub groups: usize,
    /// Target total of direct user → group memberships.
    pub memberships: usize,
    /// Length of chains of nested groups (0: no nesting).
    pub nesting_depth: usize,
    /// Share of users that are B2B guests (`#EXT#` UPN, userType Guest).
    pub guest_ratio: f64,
    /// Share of users with `accountEnabled` false.
    pub disabled_ratio: f64,
    /// Share of member users with `mail` null.
    pub without_mail_ratio: f64,
    /// Groups that reuse another group's displayName.
    pub duplicate_group_names: usize,
    /// Enterprise apps (service principals) with user and group assignments.
    pub enterprise_apps: usize,
    /// Devices and org contacts, each put in one group (members that are not users).
    pub devices: usize,
    /// Org contacts, each put in one group (see `devices`).
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
    let domains = Domains {
        domain,
        mail_domain,
        cost_center,
    };
    let rng = &mut rng;
    let users = steps::users(rng, spec, &domains, &mut tenant);
    let names = steps::group_names(rng, spec);
    let groups = steps::groups(rng, &domains, &mut tenant, names);
    steps::memberships(rng, spec, &mut tenant, &users, &groups);
    steps::nesting(rng, spec, &mut tenant, &groups);
    steps::devices(rng, spec, &mut tenant, &groups);
    steps::contacts(rng, spec, &mut tenant, &groups);
    steps::service_principals(rng, spec, &mut tenant, &creds.client_id, &users, &groups);
    tenant
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ObjectKind;

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
