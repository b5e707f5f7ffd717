"""Drift check: every route the SDK calls (pinak_sdk._routes.ROUTES), with the query
parameters it sends, is in the real service's GET /openapi.json; and every memory route of the
service is either wrapped by the SDK or listed in NOT_COVERED with a reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pinak_sdk import NOT_COVERED, ROUTES


@pytest.fixture(scope="module")
def spec(url: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/openapi.json", timeout=30)
    resp.raise_for_status()
    doc: dict[str, Any] = resp.json()
    assert doc["openapi"].startswith("3.")
    return doc


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    op = spec["paths"].get(path, {}).get(method.lower())
    return op if isinstance(op, dict) else None


def _params(op: dict[str, Any], where: str) -> set[str]:
    return {p["name"] for p in op.get("parameters", []) if p.get("in") == where}


def test_every_sdk_route_is_served_with_its_parameters(spec: dict[str, Any]) -> None:
    problems = []
    for name, route in ROUTES.items():
        op = _operation(spec, route.method, route.path)
        if op is None:
            problems.append(f"{name}: {route.method} {route.path} is not in /openapi.json")
            continue
        if _params(op, "path") != route.path_params:
            problems.append(f"{name}: path parameters {sorted(route.path_params)} != {sorted(_params(op, 'path'))}")
        query = _params(op, "query")
        if not route.query <= query:
            problems.append(f"{name}: sends query {sorted(route.query - query)} the service does not declare")
        if route.query != query:
            problems.append(f"{name}: the service declares query {sorted(query - route.query)} the SDK never sends")
        if route.auth == (op.get("security") == []):
            problems.append(f"{name}: auth={route.auth} but the spec's security is {op.get('security')!r}")
    assert not problems, "\n".join(problems)


def test_every_memory_route_is_covered_or_excused(spec: dict[str, Any]) -> None:
    covered = {(r.method, r.path) for r in ROUTES.values()}
    served = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        if path.startswith("/api/v1/memory/")
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    missing = served - covered - set(NOT_COVERED)
    assert not missing, f"memory routes neither in ROUTES nor NOT_COVERED: {sorted(missing)}"
    stale = set(NOT_COVERED) - served
    assert not stale, f"NOT_COVERED names routes the service no longer has: {sorted(stale)}"
    both = set(NOT_COVERED) & covered
    assert not both, f"routes both covered and NOT_COVERED: {sorted(both)}"
    assert all(reason.strip() for reason in NOT_COVERED.values())
