//! Checks of single values that the loader and other crates share: GUIDs, DNS names, Graph
//! attribute names, loopback URLs; and the wording of problems with them.

use std::collections::BTreeSet;

/// Whether `url` points at this machine (`localhost`, 127.0.0.0/8, `::1`), where plain http
/// does not cross a network.
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

pub(crate) fn regex_message(pattern: &str, e: &regex::Error) -> String {
    // The regex crate's message spans several lines with a caret; keep its last line (the
    // reason) so the problem stays on one line.
    let reason = e
        .to_string()
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid")
        .trim()
        .trim_start_matches("error: ")
        .to_owned();
    format!(
        "'{pattern}' is not a valid regular expression ({reason}); see https://docs.rs/regex/#syntax"
    )
}

pub(crate) fn unknown_target(name: &str, targets: &BTreeSet<&str>) -> String {
    if targets.is_empty() {
        format!("names target '{name}', but the file has no [[targets]]")
    } else {
        format!(
            "names target '{name}', which is not defined; defined targets: {}",
            targets.iter().copied().collect::<Vec<_>>().join(", ")
        )
    }
}

pub(crate) fn attribute_hint(name: &str) -> String {
    if name.starts_with("extension_") && name.contains('-') {
        return format!(
            "'{name}' is not a directory extension name: write the app id without hyphens, \
             extension_<appIdWithoutHyphens>_<name>"
        );
    }
    format!(
        "'{name}' is not a source attribute name; use a Graph user property such as \
         userPrincipalName, mail, employeeId, onPremisesSamAccountName, \
         onPremisesExtensionAttributes.extensionAttribute1 … 15, or extension_<appId>_<name>"
    )
}

/// A Graph property name, optionally one level nested (`onPremisesExtensionAttributes.x`).
pub fn is_attribute_name(name: &str) -> bool {
    let part = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    match name.split_once('.') {
        Some((a, b)) => part(a) && part(b),
        None => part(name),
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex.
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A DNS name with at least two labels (`contoso.onmicrosoft.com`).
pub(crate) fn is_dns_name(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    labels.len() >= 2
        && s.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}
