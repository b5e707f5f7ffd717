//! The router: every path of the contract and where its handler lives.

pub mod admin;
pub mod capture;
pub mod memory;
pub mod paging;
pub mod registry;
pub mod review;
pub mod system;
pub mod units;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use crate::http;
use crate::state::AppState;

fn memory_routes() -> Router<AppState> {
    Router::new()
        .route("/schema", get(memory::list_schemas))
        .route("/schema/{layer}", get(memory::get_schema))
        .route("/capture/session", post(capture::session))
        .route("/capture", post(capture::capture))
        .route("/add", post(memory::add_semantic))
        .route("/episodic/add", post(memory::add_episodic))
        .route("/procedural/add", post(memory::add_procedural))
        .route("/rag/add", post(memory::add_rag))
        .route("/working/add", post(memory::add_working))
        .route("/session/add", post(memory::add_session))
        .route("/event", post(memory::add_event))
        .route("/search", get(memory::search))
        .route("/retrieve_context", get(memory::retrieve_context))
        .route("/rag/search", get(memory::rag_search))
        .route("/events", get(memory::list_events))
        .route("/session/list", get(memory::list_session))
        .route("/working/list", get(memory::list_working))
        .route("/agent/heartbeat", post(registry::heartbeat))
        .route("/agent/list", get(registry::list_agents))
        .route("/access/list", get(registry::list_access))
        .route("/client/register", post(registry::register_client))
        .route("/client/list", get(registry::list_clients))
        .route("/client/summary", get(registry::client_summary))
        .route("/client/issues", post(registry::create_issue).get(registry::list_issues))
        .route("/client/issues/{issue_id}/resolve", post(registry::resolve_issue))
        .route("/quarantine/propose/{layer}", post(review::propose))
        .route("/quarantine/list", get(review::list))
        .route("/quarantine/approve/{item_id}", post(review::approve))
        .route("/quarantine/reject/{item_id}", post(review::reject))
        .route("/maintenance/verify", post(admin::verify))
        .route("/units", post(units::create))
        .route("/units/related/{layer}/{record_id}", get(units::related))
        // Declared last in the prototype: a catch-all for two-segment paths.
        .route("/{layer}/{memory_id}", get(memory::get_memory).put(memory::update_memory).delete(memory::delete_memory))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(system::root))
        .route("/api/v1/live", get(system::live))
        .route("/api/v1/health", get(system::health))
        .route("/api/v1/metrics", get(system::json_metrics))
        .route("/metrics", get(system::prometheus))
        .route("/api/v1/auth/revoke", post(admin::revoke))
        .nest("/api/v1/memory", memory_routes())
        .route_layer(middleware::from_fn(http::tag_route))
        .layer(middleware::from_fn_with_state(state.clone(), http::pipeline))
        .with_state(state)
}
