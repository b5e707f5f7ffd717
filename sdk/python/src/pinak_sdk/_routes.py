"""The table of every HTTP route the SDK calls.

Every client method sends its request through one `Route` of `ROUTES`, and sends only the
query parameters listed there, so the drift test (tests/test_drift.py) can check the whole
table against the service's own `GET /openapi.json`. `NOT_COVERED` names the memory routes
the SDK deliberately does not wrap, each with the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Route", "ROUTES", "NOT_COVERED"]

_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Route:
    """One (method, path) of the API, as the OpenAPI document spells it."""

    method: str
    path: str
    query: frozenset[str] = frozenset()
    auth: bool = True

    @property
    def idempotent(self) -> bool:
        """Safe to repeat after a failure that may have reached the server."""
        return self.method == "GET"

    @property
    def path_params(self) -> frozenset[str]:
        return frozenset(_PARAM.findall(self.path))


def _r(method: str, path: str, *query: str, auth: bool = True) -> Route:
    return Route(method, path, frozenset(query), auth)


_M = "/api/v1/memory"
_PAGE = ("limit", "cursor")
_SEARCH = ("query", "mode", "fusion", "rrf_k", "weight")

ROUTES: dict[str, Route] = {
    # service
    "health": _r("GET", "/api/v1/health", auth=False),
    "revoke_token": _r("POST", "/api/v1/auth/revoke"),
    # writes
    "remember": _r("POST", f"{_M}/add"),
    "add_batch": _r("POST", f"{_M}/batch"),
    "add_episode": _r("POST", f"{_M}/episodic/add"),
    "add_skill": _r("POST", f"{_M}/procedural/add"),
    "add_rag": _r("POST", f"{_M}/rag/add"),
    "add_working": _r("POST", f"{_M}/working/add"),
    "add_session": _r("POST", f"{_M}/session/add"),
    "add_event": _r("POST", f"{_M}/event"),
    # recall
    "search": _r("GET", f"{_M}/search", "k", *_SEARCH),
    "retrieve_context": _r("GET", f"{_M}/retrieve_context", "limit", *_SEARCH),
    "rag_search": _r("GET", f"{_M}/rag/search", "query", "limit"),
    # records
    "get": _r("GET", f"{_M}/{{layer}}/{{memory_id}}"),
    "update": _r("PUT", f"{_M}/{{layer}}/{{memory_id}}"),
    "delete": _r("DELETE", f"{_M}/{{layer}}/{{memory_id}}"),
    # paged lists
    "events": _r("GET", f"{_M}/events", *_PAGE),
    "session_lines": _r("GET", f"{_M}/session/list", "session_id", *_PAGE),
    "working_notes": _r("GET", f"{_M}/working/list", *_PAGE),
    "agents": _r("GET", f"{_M}/agent/list", *_PAGE),
    "access_log": _r("GET", f"{_M}/access/list", *_PAGE),
    "clients": _r("GET", f"{_M}/client/list", *_PAGE),
    "issues": _r("GET", f"{_M}/client/issues", "status_filter", *_PAGE),
    "quarantine": _r("GET", f"{_M}/quarantine/list", "status_filter", *_PAGE),
    # agents, clients, issues
    "heartbeat": _r("POST", f"{_M}/agent/heartbeat"),
    "register_client": _r("POST", f"{_M}/client/register"),
    "client_summary": _r("GET", f"{_M}/client/summary", "include_children"),
    "report_issue": _r("POST", f"{_M}/client/issues"),
    "resolve_issue": _r("POST", f"{_M}/client/issues/{{issue_id}}/resolve"),
    # quarantine
    "propose": _r("POST", f"{_M}/quarantine/propose/{{layer}}"),
    "approve": _r("POST", f"{_M}/quarantine/approve/{{item_id}}"),
    "reject": _r("POST", f"{_M}/quarantine/reject/{{item_id}}"),
    # audit, units, schemas
    "verify_audit": _r("POST", f"{_M}/maintenance/verify"),
    "audit_head": _r("GET", f"{_M}/maintenance/audit/head"),
    "create_unit": _r("POST", f"{_M}/units"),
    "related": _r("GET", f"{_M}/units/related/{{layer}}/{{record_id}}"),
    "schemas": _r("GET", f"{_M}/schema"),
    "schema": _r("GET", f"{_M}/schema/{{layer}}"),
}

# (method, path) of memory routes the SDK does not wrap, with the reason.
NOT_COVERED: dict[tuple[str, str], str] = {
    ("POST", f"{_M}/capture/session"): "capture pipeline not accepting yet: always 503 capture_disabled",
    ("POST", f"{_M}/capture"): "capture pipeline not accepting yet: always 503 capture_disabled",
    ("GET", f"{_M}/export"): "an operator's transfer of a whole project (JSON lines): `pinak export`",
    ("POST", f"{_M}/import"): "an operator's restore of a whole project (JSON lines): `pinak import`",
}
