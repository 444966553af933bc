//! Names as the Atlassian products compare them: usernames and group names are the same name
//! whatever their letter case, in every product. Every comparison and every index of names goes
//! through here, so that they all agree (and a name is lowered the same way everywhere).

use std::borrow::Cow;

/// The form a name is compared and indexed by: lower case. ASCII (nearly every name) is lowered
/// without a copy when it already is lower case; anything else takes the full Unicode route.
pub fn lower(name: &str) -> Cow<'_, str> {
    if name.is_ascii() {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        }
    } else {
        Cow::Owned(name.to_lowercase())
    }
}

/// [`lower`], owned: the key of a name in a map or set.
pub fn name_key(name: &str) -> String {
    lower(name).into_owned()
}

/// Whether two names are the same name, without allocating when both are ASCII. (Only both: a
/// non-ASCII letter such as the Kelvin sign may lower to an ASCII one.)
pub fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a) == lower(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_as_their_lower_case() {
        for (a, b) in [
            ("Ada", "ada"),
            ("ADA", "adb"),
            ("\u{212A}elvin", "kelvin"),
            ("Zoë", "ZOË"),
            ("", ""),
        ] {
            assert_eq!(
                same_name(a, b),
                a.to_lowercase() == b.to_lowercase(),
                "{a} {b}"
            );
            assert_eq!(name_key(a), a.to_lowercase());
        }
        assert!(matches!(lower("already"), Cow::Borrowed(_)));
    }
}
