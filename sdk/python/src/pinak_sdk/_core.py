"""What the sync and async clients share: building requests from the route table, the retry
policy, and decoding answers into results or exceptions."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ._errors import ConnectionFailed, error_for_status
from ._routes import ROUTES, Route
from ._types import JSON, Page, Record

__version__ = "0.1.0"
USER_AGENT = f"pinak-sdk-python/{__version__}"
DEFAULT_TIMEOUT = 30.0
# A Retry-After longer than this is capped, so a client never sleeps for minutes.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Request:
    route: Route
    url_path: str
    params: dict[str, str]
    body: Any = None


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def build(
    name: str,
    *,
    path: Mapping[str, str] | None = None,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
) -> Request:
    """A request for route `name` of `ROUTES`. Query parameters that are None are left out;
    a parameter the route table does not list is a programming error (ValueError)."""
    route = ROUTES[name]
    given = dict(path or {})
    if set(given) != route.path_params:
        raise ValueError(f"{name}: path parameters {sorted(given)} != {sorted(route.path_params)}")
    for key, value in given.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name}: path parameter {key} must be a non-empty string")
    url_path = route.path.format(**{k: quote(v, safe="") for k, v in given.items()})
    sent = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
    unknown = set(sent) - route.query
    if unknown:
        raise ValueError(f"{name}: query parameters {sorted(unknown)} are not in the route table")
    return Request(route, url_path, sent, body)


@dataclass(frozen=True)
class RetryEvent:
    """Passed to `on_retry` before each retry's sleep."""

    attempt: int  # 1 for the first retry
    delay: float  # seconds about to be slept
    reason: str  # "503" or the exception's class name
    method: str
    url: str


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off: `backoff_base * 2**n` seconds (capped at `max_backoff`) plus up to
    `jitter` seconds; a `Retry-After` header replaces the computed delay (capped at 60 s)."""

    max_retries: int = 3
    backoff_base: float = 0.25
    max_backoff: float = 8.0
    jitter: float = 0.1

    def delay(self, retry_index: int, retry_after: str | None = None) -> float:
        after = parse_retry_after(retry_after)
        if after is not None:
            return min(after, MAX_RETRY_AFTER)
        base = min(self.backoff_base * (2**retry_index), self.max_backoff)
        return base + random.uniform(0, self.jitter)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# Failures where the request certainly never reached the server: safe to retry any method.
UNSENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def retry_exception(route: Route, exc: Exception) -> bool:
    if isinstance(exc, UNSENT_ERRORS):
        return True
    return route.idempotent and isinstance(exc, httpx.TransportError)


def _json_or_text(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return resp.text


def _not_ready(resp: httpx.Response) -> bool:
    """The readiness gate's 503: the request was refused before any handler ran."""
    body = _json_or_text(resp)
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, dict) and detail.get("status") == "not_ready"


def retry_status(route: Route, resp: httpx.Response) -> bool:
    """503 is retried for GETs, and for writes only when the service was not ready (nothing
    was processed); a write that timed out (`Request timed out`) may have been stored."""
    return resp.status_code == 503 and (route.idempotent or _not_ready(resp))


def connection_failed(req: Request, url: str, exc: Exception, attempts: int) -> ConnectionFailed:
    return ConnectionFailed(
        f"{req.route.method} {url}: {type(exc).__name__}: {exc} (after {attempts} attempt(s))",
        method=req.route.method,
        url=url,
    )


def decode(req: Request, resp: httpx.Response) -> Any:
    """The JSON body of a success (None for 204), else the matching `PinakError`."""
    method, url = req.route.method, str(resp.request.url)
    if 200 <= resp.status_code < 300:
        return _json_or_text(resp)
    err = error_for_status(
        resp.status_code,
        _json_or_text(resp),
        method=method,
        url=url,
        request_id=resp.headers.get("x-request-id"),
    )
    raise err


def page(resp: httpx.Response, items: Any, parse: Callable[[JSON], Any] | None = None) -> Page[Any]:
    rows = items if isinstance(items, list) else []
    out = [parse(r) if parse is not None and isinstance(r, dict) else r for r in rows]
    return Page(out, resp.headers.get("x-next-cursor") or None)


def headers(client_name: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if client_name:
        h["X-Pinak-Client-Name"] = client_name
    h.update(extra or {})
    return h


def auth_header(req: Request, token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token and req.route.auth else {}


def drop_none(d: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in d.items() if v is not None}


def grouped(body: Any) -> dict[str, list[Any]]:
    if not isinstance(body, dict):
        return {}
    return {
        layer: [Record.from_dict(r) for r in rows if isinstance(r, dict)]
        for layer, rows in body.items()
        if isinstance(rows, list)
    }
