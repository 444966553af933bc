//! The OpenAPI 3.1 document of the admin API, generated from the handlers' annotations and
//! served at `/api/v1/openapi.json`: a console or a script can be generated from it, and the
//! snapshot test shows every change to the API as a reviewed diff.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{apps, login, runs};
use crate::error::{ErrorBody, ErrorEnvelope};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idsync admin API",
        description = "Apps, targets, runs and history of an idsync service. Every route needs `Authorization: Bearer <admin token>`.",
    ),
    servers((url = "/api/v1")),
    paths(
        apps::list_idps,
        apps::list_apps,
        apps::get_app,
        apps::create_app,
        apps::replace_app,
        apps::delete_app,
        apps::test_app,
        apps::list_targets,
        apps::get_target,
        apps::create_target,
        apps::replace_target,
        apps::delete_target,
        apps::test_target,
        runs::start_run,
        runs::list_runs,
        runs::get_run,
        runs::run_operations,
        runs::approve_run,
        runs::discard_run,
        login::sync_user,
        openapi_json,
    ),
    components(schemas(apps::AppView, apps::TargetView, runs::StartRun, ErrorEnvelope, ErrorBody)),
    modifiers(&AdminToken),
    tags(
        (name = "idps", description = "The identity providers idsync reads"),
        (name = "apps", description = "Apps: identity-provider connections"),
        (name = "targets", description = "Targets: Atlassian instances"),
        (name = "runs", description = "Runs, dry runs, approvals and the history"),
    )
)]
/// The document's definition; [`document`] gives it with the version filled in.
pub struct ApiDoc;

/// The bearer scheme, required by every operation: the router puts every route behind the
/// token, so the document says it once here rather than on each handler.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.options,
                &mut item.head,
                &mut item.patch,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                operation.security = Some(vec![SecurityRequirement::new(
                    "admin_token",
                    Vec::<String>::new(),
                )]);
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token `idsync serve` printed on its first start (`idsync admin-token rotate` makes a new one)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, versioned as the idsync that serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "runs",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object))
)]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
