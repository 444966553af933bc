//! Which version of its product a target runs, read once per run from a documented endpoint,
//! and what that version has no REST resource for. Customers run Jira 9–11, Confluence 8–10
//! and Bitbucket 8–9; Confluence's admin user resources arrived over several of those
//! versions (api-contracts.md D, "Version gates"): what an older version cannot do is planned
//! as a warning naming the version it needs, never sent (a 404 from a missing route would
//! otherwise be taken for "already done", or fail every run).

use std::collections::BTreeMap;

use idsync_model::{OperationKind, ProductInfo, TargetError, Version};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::api::{Api, Call};

/// A GET of `template`; `quick` for a probe (see [`Call::quick`]).
fn get(api: &Api, template: &'static str, quick: bool) -> Call {
    let call = api.get(template, &[]);
    if quick { call.quick() } else { call }
}

/// `GET /rest/api/2/serverInfo`.
/// https://developer.atlassian.com/server/jira/platform/rest/v10002/api-group-serverinfo/#api-api-2-serverinfo-get
pub(crate) async fn jira(api: &Api, quick: bool) -> Result<ProductInfo, TargetError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ServerInfo {
        version: String,
        #[serde(default)]
        version_numbers: Vec<u32>,
    }
    let info: ServerInfo = api
        .fetch(
            get(api, "rest/api/2/serverInfo", quick),
            "read Jira's version",
        )
        .await?;
    let version = match info.version_numbers.as_slice() {
        [major, minor, patch, ..] => Some(Version(*major, *minor, *patch)),
        _ => Version::parse(&info.version),
    };
    Ok(ProductInfo {
        product: "Jira".into(),
        version,
    })
}

/// `GET /rest/api/1.0/application-properties` (no authentication needed): Bitbucket DC's
/// OpenAPI document, operation `getApplicationProperties` (System Maintenance).
pub(crate) async fn bitbucket(api: &Api, quick: bool) -> Result<ProductInfo, TargetError> {
    #[derive(Deserialize)]
    struct Properties {
        version: String,
    }
    let properties: Properties = api
        .fetch(
            get(api, "rest/api/1.0/application-properties", quick),
            "read Bitbucket's version",
        )
        .await?;
    Ok(ProductInfo {
        product: "Bitbucket".into(),
        version: Version::parse(&properties.version),
    })
}

/// `GET /rest/api/server-information` (Confluence 9.1+), else the application-links manifest
/// every Atlassian server product serves (`GET /rest/applinks/1.0/manifest`, [U] JSON shape
/// with `version`).
/// https://developer.atlassian.com/server/confluence/rest/v1000/api-group-server-information/
pub(crate) async fn confluence(api: &Api, quick: bool) -> Result<ProductInfo, TargetError> {
    #[derive(Deserialize)]
    struct WithVersion {
        version: String,
    }
    let what = "read Confluence's version";
    let reply = api
        .send(get(api, "rest/api/server-information", quick))
        .await?;
    let info: WithVersion = if reply.is_success() {
        api.parse(&reply, what)?
    } else if reply.status == StatusCode::NOT_FOUND {
        api.fetch(get(api, "rest/applinks/1.0/manifest", quick), what)
            .await?
    } else {
        return Err(api.error(&reply, what));
    };
    Ok(ProductInfo {
        product: "Confluence".into(),
        version: Version::parse(&info.version),
    })
}

/// The Confluence resources idsync uses that arrived after 8.0, with the version that brought
/// them (CONFSERVER-54928, -87290/87291/87292 and the versioned REST references).
const CONFLUENCE_NEEDS: [(OperationKind, Version, &str); 7] = [
    (
        OperationKind::DeactivateUser,
        Version(8, 2, 0),
        "deactivate users",
    ),
    (
        OperationKind::ReactivateUser,
        Version(8, 2, 0),
        "reactivate users",
    ),
    (OperationKind::DeleteUser, Version(8, 2, 0), "delete users"),
    (OperationKind::CreateUser, Version(8, 4, 0), "create users"),
    (
        OperationKind::UpdateUser,
        Version(9, 0, 0),
        "change users' details",
    ),
    (
        OperationKind::AddMembership,
        Version(9, 0, 0),
        "add users to groups",
    ),
    (
        OperationKind::RemoveMembership,
        Version(9, 0, 0),
        "remove users from groups",
    ),
];

/// What a Confluence of `version` cannot do through its REST API, with why. An unknown version
/// is taken for a current one (a route that is missing after all fails with its 404).
pub(crate) fn confluence_unavailable(version: Option<Version>) -> BTreeMap<OperationKind, String> {
    let Some(version) = version else {
        return BTreeMap::new();
    };
    CONFLUENCE_NEEDS
        .iter()
        .filter(|(_, needs, _)| version < *needs)
        .map(|(kind, needs, what)| {
            (
                *kind,
                format!(
                    "Confluence {version} cannot {what} through its REST API (needs Confluence {}.{} or later)",
                    needs.0, needs.1
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluence_capabilities_follow_its_version() {
        let at = |v: &str| confluence_unavailable(Version::parse(v));
        assert_eq!(at("8.1.4").len(), 7);
        let at_8_3 = at("8.3.2");
        assert_eq!(
            at_8_3.keys().copied().collect::<Vec<_>>(),
            vec![
                OperationKind::CreateUser,
                OperationKind::UpdateUser,
                OperationKind::AddMembership,
                OperationKind::RemoveMembership
            ]
        );
        assert!(at_8_3[&OperationKind::CreateUser].contains("needs Confluence 8.4"));
        assert_eq!(at("8.5.0").len(), 3);
        assert!(at("9.0.1").is_empty());
        assert!(at("10.2.0").is_empty());
        assert!(confluence_unavailable(None).is_empty());
    }

    #[test]
    fn versions_parse_from_what_products_print() {
        assert_eq!(Version::parse("9.12.3"), Some(Version(9, 12, 3)));
        assert_eq!(Version::parse("8.5"), Some(Version(8, 5, 0)));
        assert_eq!(Version::parse("10.0.0-m12"), Some(Version(10, 0, 0)));
        assert_eq!(Version::parse("unknown"), None);
    }
}
