//! Licensing: users in a licence-granting group hold a seat; the seat check on creating users
//! and adding them to such groups, and the licence resource (`/admin/license`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use serde_json::json;

use crate::Inner;
use crate::common::json_response;
use crate::state::{Dir, lower};

use super::{Res, licence_error};

/// The routes served here, by path under each API prefix, each with its operationId.
pub(super) fn routes() -> Vec<(&'static str, MethodRouter<Arc<Inner>>)> {
    vec![
        // get_2 ("Get license details", System Maintenance; ADMIN permission)
        ("/admin/license", get(license)),
    ]
}

pub(super) fn licence_groups(sim: &Inner) -> BTreeSet<String> {
    let config = &sim.config;
    config
        .bitbucket_licence_groups
        .iter()
        .map(|g| lower(g))
        .chain(std::iter::once(lower(&config.bitbucket_default_group)))
        .collect()
}

pub(super) fn licensed(dir: &Dir, grants: &BTreeSet<String>, key: &str) -> bool {
    grants
        .iter()
        .filter_map(|g| dir.groups.get(g))
        .any(|g| g.members.contains(key))
}

pub(super) fn licensed_count(dir: &Dir, grants: &BTreeSet<String>) -> usize {
    let keys: BTreeSet<&String> = grants
        .iter()
        .filter_map(|g| dir.groups.get(g))
        .flat_map(|g| g.members.iter())
        .collect();
    keys.len()
}

/// `Err(403)` when adding `key` to `groups` would take a seat that is not there.
pub(super) fn check_seat(
    sim: &Inner,
    dir: &Dir,
    key: Option<&str>,
    groups: &[String],
) -> Result<(), Response> {
    let Some(seats) = dir.seats else {
        return Ok(());
    };
    let grants = licence_groups(sim);
    if !groups.iter().any(|g| grants.contains(&lower(g))) {
        return Ok(());
    }
    if key.is_some_and(|k| licensed(dir, &grants, k)) {
        return Ok(());
    }
    if licensed_count(dir, &grants) >= seats {
        return Err(licence_error());
    }
    Ok(())
}

/// get_2: the installed licence (RestBitbucketLicense). Its user limit follows the licence-seat
/// knob (`AtlassianSim::set_licence_seats`) and `status.currentNumberOfUsers` counts the users
/// in a licence-granting group, as creating users and adding them to such groups do. The dates
/// and texts are fixed placeholders. [U] An unlimited licence is shown with
/// `unlimitedNumberOfUsers` and a limit of -1.
async fn license(State(sim): State<Arc<Inner>>) -> Res {
    let state = crate::lock(&sim.state);
    let dir = &state.bitbucket;
    let used = licensed_count(dir, &licence_groups(&sim));
    let maximum = dir
        .seats
        .map_or(-1, |seats| i64::try_from(seats).unwrap_or(i64::MAX));
    const SERVER_ID: &str = "B0B0-SIMU-LATE-D000";
    Ok(json_response(
        StatusCode::OK,
        json!({
            "creationDate": 1_767_225_600_000_i64,
            "purchaseDate": 1_767_225_600_000_i64,
            "expiryDate": 1_830_297_600_000_i64,
            "maintenanceExpiryDate": 1_830_297_600_000_i64,
            "gracePeriodEndDate": 1_832_889_600_000_i64,
            "numberOfDaysBeforeExpiry": 730,
            "numberOfDaysBeforeGracePeriodExpiry": 760,
            "numberOfDaysBeforeMaintenanceExpiry": 730,
            "daysBeforeExpiry": 730,
            "maximumNumberOfUsers": maximum,
            "unlimitedNumberOfUsers": dir.seats.is_none(),
            "serverId": SERVER_ID,
            "supportEntitlementNumber": "SEN-SIMULATED",
            "license": "<encoded license text>",
            "status": {"serverId": SERVER_ID, "currentNumberOfUsers": used},
        }),
    ))
}
