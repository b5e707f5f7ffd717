//! The router, built from the route table in `catalog` (which also generates `/openapi.json`).

pub mod admin;
pub mod capture;
pub mod catalog;
pub mod docs;
pub mod memory;
pub mod paging;
pub mod reference;
pub mod registry;
pub mod review;
pub mod system;
pub mod transfer;
pub mod units;

use axum::Router;
use axum::middleware;

use crate::runtime::state::AppState;
use crate::web::http;

/// The service: the catalog's routes and `/mcp`, whose tools call those same routes
/// in-process, all behind the request pipeline.
pub fn router(state: AppState) -> Router {
    let mut routes = Router::new();
    for (op, handler) in catalog::routes() {
        // Routes sharing a path (GET/PUT/DELETE on a record) merge into one method router.
        routes = routes.route(op.path, handler);
    }
    let routes = routes.with_state(state.clone());
    routes
        .clone()
        .merge(crate::mcp::service(state.clone(), routes))
        .route_layer(middleware::from_fn(http::tag_route))
        .layer(middleware::from_fn_with_state(state, http::pipeline))
}
