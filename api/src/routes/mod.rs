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
pub mod units;

use axum::Router;
use axum::middleware;

use crate::runtime::state::AppState;
use crate::web::http;

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (op, handler) in catalog::routes() {
        // Routes sharing a path (GET/PUT/DELETE on a record) merge into one method router.
        router = router.route(op.path, handler);
    }
    router
        .route_layer(middleware::from_fn(http::tag_route))
        .layer(middleware::from_fn_with_state(state.clone(), http::pipeline))
        .with_state(state)
}
