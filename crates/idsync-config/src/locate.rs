//! Where a field is: from a path such as `apps[0].scope.groups[1]` to its line in the file, by
//! walking the spanned TOML document; and the other way, from a byte offset to the field.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::env::Overrides;
use crate::problem::Problem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub(crate) fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }
}

pub(crate) fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// `apps[0].scope.groups[1]` → its segments: the inverse of [`render_path`]. A bracket that
/// holds no number stays part of its key.
pub(crate) fn parse_path(field: &str) -> Vec<Seg> {
    let mut path = Vec::new();
    for part in field.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        let mut indexes = Vec::new();
        while let Some(inner) = rest.strip_prefix('[') {
            let Some((number, after)) = inner.split_once(']') else {
                break;
            };
            let Ok(i) = number.parse::<usize>() else {
                break;
            };
            indexes.push(Seg::Index(i));
            rest = after;
        }
        if !rest.is_empty() {
            path.push(Seg::key(part));
            continue;
        }
        if !key.is_empty() {
            path.push(Seg::key(key));
        }
        path.extend(indexes);
    }
    path
}

/// A problem at `path`: at its line, or naming the environment variable that set it.
pub(crate) fn place(
    root: Option<&Spanned<DeTable<'_>>>,
    doc: &Document,
    overrides: &Overrides,
    path: &[Seg],
    message: String,
) -> Problem {
    let field = render_path(path);
    let env_var = overrides.by_path.get(&field).cloned();
    let line = if env_var.is_some() {
        None
    } else {
        root.and_then(|root| span_of(root, path))
            .map(|s| doc.line_of(s.start))
    };
    Problem {
        field,
        line,
        env_var,
        message,
    }
}

/// Line numbers from byte offsets.
pub(crate) struct Document {
    line_starts: Vec<usize>,
}

impl Document {
    pub(crate) fn new(text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Document { line_starts }
    }

    pub(crate) fn line_of(&self, offset: usize) -> usize {
        match self.line_starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// The span of the value at `path`, or of the nearest enclosing value that exists (so a
/// missing field points at its table).
pub(crate) fn span_of(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best = None;
    let mut current: Option<&DeValue<'_>> = None;
    let mut table = Some(root.get_ref());
    for seg in path {
        let next = match (seg, table, current) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(*i),
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        current = Some(next.get_ref());
        table = next.get_ref().as_table();
    }
    best
}

/// The path of the deepest key or value whose span holds `offset`.
pub(crate) fn path_at(root: &Spanned<DeTable<'_>>, offset: usize) -> String {
    fn walk_table(t: &DeTable<'_>, offset: usize, path: &mut Vec<Seg>) {
        for (k, v) in t.iter() {
            if k.span().contains(&offset) {
                path.push(Seg::Key(k.get_ref().to_string()));
                return;
            }
            if v.span().contains(&offset) {
                path.push(Seg::Key(k.get_ref().to_string()));
                walk_value(v.get_ref(), offset, path);
                return;
            }
        }
        // Array-of-tables entries span only their header; look inside them anyway.
        for (k, v) in t.iter() {
            if let DeValue::Array(a) = v.get_ref() {
                for (i, item) in a.iter().enumerate() {
                    if item.span().contains(&offset)
                        || item
                            .get_ref()
                            .as_table()
                            .is_some_and(|t| contains_offset(t, offset))
                    {
                        path.push(Seg::Key(k.get_ref().to_string()));
                        path.push(Seg::Index(i));
                        walk_value(item.get_ref(), offset, path);
                        return;
                    }
                }
            } else if let DeValue::Table(inner) = v.get_ref()
                && contains_offset(inner, offset)
            {
                path.push(Seg::Key(k.get_ref().to_string()));
                walk_table(inner, offset, path);
                return;
            }
        }
    }
    fn contains_offset(t: &DeTable<'_>, offset: usize) -> bool {
        t.iter().any(|(k, v)| {
            k.span().contains(&offset)
                || v.span().contains(&offset)
                || match v.get_ref() {
                    DeValue::Table(inner) => contains_offset(inner, offset),
                    DeValue::Array(a) => a.iter().any(|item| {
                        item.span().contains(&offset)
                            || item
                                .get_ref()
                                .as_table()
                                .is_some_and(|t| contains_offset(t, offset))
                    }),
                    _ => false,
                }
        })
    }
    fn walk_value(v: &DeValue<'_>, offset: usize, path: &mut Vec<Seg>) {
        match v {
            DeValue::Table(t) => walk_table(t, offset, path),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    if item.span().contains(&offset)
                        || item
                            .get_ref()
                            .as_table()
                            .is_some_and(|t| contains_offset(t, offset))
                    {
                        path.push(Seg::Index(i));
                        walk_value(item.get_ref(), offset, path);
                        return;
                    }
                }
            }
            _ => {}
        }
    }
    let mut path = Vec::new();
    walk_table(root.get_ref(), offset, &mut path);
    render_path(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_parse_back_into_their_segments() {
        for field in [
            "apps[0].scope.groups[1]",
            "apps[2].overrides.jira-prod.users.default_project_lead",
            "targets[0].token",
            "data_dir",
        ] {
            assert_eq!(render_path(&parse_path(field)), field);
        }
        assert_eq!(
            parse_path("apps[0].scope.groups[1]"),
            vec![
                Seg::key("apps"),
                Seg::Index(0),
                Seg::key("scope"),
                Seg::key("groups"),
                Seg::Index(1),
            ]
        );
        // A bracket that holds no number is part of the key (an override named `a[b]`).
        assert_eq!(
            parse_path("apps[0].overrides.a[b]"),
            vec![
                Seg::key("apps"),
                Seg::Index(0),
                Seg::key("overrides"),
                Seg::key("a[b]"),
            ]
        );
    }
}
