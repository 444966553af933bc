//! Text the phases share: names compared the way the targets compare them, and many short
//! strings laid side by side for the indexes.

use std::borrow::Cow;

/// Lower case for comparing names the way the targets do. ASCII (nearly every name) is lowered
/// without a copy when it is already lower case; anything else takes the full Unicode route.
pub(super) fn lower(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    } else {
        Cow::Owned(s.to_lowercase())
    }
}

/// `lower(a) == lower(b)`, without allocating when both are ASCII. (Only both: a non-ASCII
/// letter such as the Kelvin sign may lower to an ASCII one.)
pub(super) fn same_lower(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        lower(a) == lower(b)
    }
}

/// Many short strings side by side. A hash map keyed by slices of it compares keys within a few
/// hundred kilobytes that stay in cache, where keys borrowed from the input would each be read
/// from wherever the input's allocation put them: a cache and TLB miss per lookup, which was
/// most of the time of a 100k-user plan.
pub(super) fn concat<'s>(strings: impl Iterator<Item = &'s str>) -> String {
    strings.collect()
}

/// The strings a [`concat`] was made of, in order, as slices of it.
pub(super) fn pieces<'c, 's>(
    concat: &'c str,
    strings: impl Iterator<Item = &'s str>,
) -> impl Iterator<Item = &'c str> {
    let mut at = 0;
    strings.map(move |s| {
        let piece = concat.get(at..at + s.len()).unwrap_or_default();
        at += s.len();
        piece
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_and_same_lower_agree_with_to_lowercase() {
        for (a, b) in [
            ("Ada", "ada"),
            ("ADA", "adb"),
            ("\u{212A}elvin", "kelvin"),
            ("Ünï", "üNÏ"),
            ("", ""),
        ] {
            assert_eq!(lower(a), a.to_lowercase());
            assert_eq!(
                same_lower(a, b),
                a.to_lowercase() == b.to_lowercase(),
                "{a} {b}"
            );
        }
    }

    #[test]
    fn pieces_give_back_the_strings_a_concat_was_made_of() {
        let strings = ["K1", "", "Ünï", "key-42"];
        let joined = concat(strings.into_iter());
        assert_eq!(joined, "K1Ünïkey-42");
        let back: Vec<&str> = pieces(&joined, strings.into_iter()).collect();
        assert_eq!(back, strings);
    }
}
