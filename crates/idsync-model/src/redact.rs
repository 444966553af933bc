//! URLs fit to be shown or stored, shared by every crate that prints or keeps one.

/// `url` fit to be shown or stored: without user info (`user:password@`), query string and
/// fragment, any of which may carry a secret (Bitbucket's create-user takes the password in
/// the query; a misconfigured base URL may hold `user:pass@`). Text that does not parse as a
/// URL is cut the same way by hand.
pub fn redact_url(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url)
        && !parsed.cannot_be_a_base()
    {
        // Both setters only fail on URLs that cannot hold user info, excluded above.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_query(None);
        parsed.set_fragment(None);
        return parsed.to_string();
    }
    let cut = url.split(['?', '#']).next().unwrap_or_default().to_owned();
    // `scheme://userinfo@host/...`: drop everything between `://` and the last `@` before the
    // path.
    if let Some((scheme, rest)) = cut.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let (authority, path) = rest.split_at(authority_end);
        if let Some(at) = authority.rfind('@') {
            return format!("{scheme}://{}{path}", &authority[at + 1..]);
        }
    }
    cut
}
