//! Text the phases share: names compared the way the targets compare them, and many short
//! strings laid side by side for the indexes.

// Names compare as every Atlassian product compares them (one definition, in the model).
pub(super) use idsync_model::name::{lower, same_name as same_lower};

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
