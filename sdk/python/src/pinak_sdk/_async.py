"""`AsyncPinakClient`: the asyncio client (same methods as `PinakClient`, awaited)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx

from . import _core
from ._core import DEFAULT_TIMEOUT, Request, RetryEvent, RetryPolicy, build, drop_none
from ._types import JSON, Page, QuarantineItem, Record, SearchHit

__all__ = ["AsyncPinakClient"]

T = TypeVar("T")
Mode = Literal["hybrid", "keyword", "vector"]
Fusion = Literal["rrf", "weighted"]
DocLayer = Literal["semantic", "episodic", "procedural", "rag"]


class AsyncPinakClient:
    """Asynchronous client of the Pinak memory API (httpx.AsyncClient).

    `base_url` is the service's address (e.g. `http://127.0.0.1:8000`), `token` a bearer JWT.
    Failed GETs are retried `max_retries` times on 503 and on connection errors, with
    exponential back-off and jitter (`Retry-After` honoured); writes are retried only when the
    request certainly was not processed (could not connect, or the service was not ready).
    Use as an async context manager, or await `aclose()`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        backoff_base: float = 0.25,
        max_backoff: float = 8.0,
        client_name: str | None = None,
        headers: Mapping[str, str] | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.retry = RetryPolicy(max_retries=max_retries, backoff_base=backoff_base, max_backoff=max_backoff)
        self.on_retry = on_retry
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            headers=_core.headers(client_name, headers),
            transport=transport,
        )

    async def __aenter__(self) -> AsyncPinakClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ plumbing

    async def _exchange(self, req: Request) -> httpx.Response:
        retries = 0
        url = self.base_url + req.url_path
        while True:
            try:
                resp = await self._http.request(
                    req.route.method,
                    req.url_path,
                    params=req.params or None,
                    json=req.body,
                    headers=_core.auth_header(req, self.token),
                )
            except httpx.TransportError as exc:
                if retries < self.retry.max_retries and _core.retry_exception(req.route, exc):
                    await self._pause(req, url, retries, None, type(exc).__name__)
                    retries += 1
                    continue
                raise _core.connection_failed(req, url, exc, retries + 1) from exc
            if retries < self.retry.max_retries and _core.retry_status(req.route, resp):
                await self._pause(req, url, retries, resp.headers.get("retry-after"), "503")
                retries += 1
                continue
            return resp

    async def _pause(self, req: Request, url: str, retries: int, retry_after: str | None, reason: str) -> None:
        delay = self.retry.delay(retries, retry_after)
        if self.on_retry is not None:
            self.on_retry(RetryEvent(retries + 1, delay, reason, req.route.method, url))
        await asyncio.sleep(delay)

    async def _send(self, req: Request) -> Any:
        return _core.decode(req, await self._exchange(req))

    async def _page(self, req: Request, parse: Callable[[JSON], Any] | None = None) -> Page[Any]:
        resp = await self._exchange(req)
        return _core.page(resp, _core.decode(req, resp), parse)

    # ------------------------------------------------------------------ service

    async def health(self) -> JSON:
        """`GET /api/v1/health`: readiness and the embedding backend (no token needed)."""
        return await self._send(build("health"))  # type: ignore[no-any-return]

    async def revoke_token(self, jti: str, expires_at: str | None = None) -> None:
        """Revoke a token by its `jti` (admin)."""
        await self._send(build("revoke_token", body=drop_none({"jti": jti, "expires_at": expires_at})))

    # ------------------------------------------------------------------ writes

    async def remember(self, content: str, tags: Sequence[str] | None = None, **fields: Any) -> JSON:
        """Add a semantic memory (`POST /add`). 201 with the record, or 202 with a quarantine
        item when the store's policy diverts the write."""
        body = drop_none({"content": content, "tags": list(tags) if tags is not None else None, **fields})
        return await self._send(build("remember", body=body))  # type: ignore[no-any-return]

    async def add_episode(
        self,
        content: str,
        *,
        goal: str | None = None,
        outcome: str | None = None,
        plan: Sequence[str] | None = None,
        salience: int | None = None,
        **fields: Any,
    ) -> JSON:
        """Add an episode (`POST /episodic/add`)."""
        body = drop_none(
            {"content": content, "goal": goal, "outcome": outcome,
             "plan": list(plan) if plan is not None else None, "salience": salience, **fields}
        )
        return await self._send(build("add_episode", body=body))  # type: ignore[no-any-return]

    async def add_skill(
        self,
        skill_name: str,
        steps: Sequence[str],
        *,
        trigger: str | None = None,
        description: str | None = None,
        code_snippet: str | None = None,
        **fields: Any,
    ) -> JSON:
        """Add a skill to the procedural layer (`POST /procedural/add`)."""
        body = drop_none(
            {"skill_name": skill_name, "steps": list(steps), "trigger": trigger,
             "description": description, "code_snippet": code_snippet, **fields}
        )
        return await self._send(build("add_skill", body=body))  # type: ignore[no-any-return]

    async def add_rag(self, query: str, external_source: str, content: str, **fields: Any) -> JSON:
        """Add an external snippet (`POST /rag/add`)."""
        body = {"query": query, "external_source": external_source, "content": content, **fields}
        return await self._send(build("add_rag", body=body))  # type: ignore[no-any-return]

    async def add_working(
        self,
        content: str,
        *,
        session_id: str | None = None,
        key: str | None = None,
        ttl_seconds: int | None = None,
        expires_at: str | None = None,
    ) -> JSON:
        """Add a working-memory note (`POST /working/add`); the answer carries `nudges`."""
        body = drop_none(
            {"content": content, "session_id": session_id, "key": key,
             "ttl_seconds": ttl_seconds, "expires_at": expires_at}
        )
        return await self._send(build("add_working", body=body))  # type: ignore[no-any-return]

    async def add_session(
        self,
        session_id: str,
        content: str,
        *,
        role: str | None = None,
        ttl_seconds: int | None = None,
        expires_at: str | None = None,
    ) -> JSON:
        """Append a session transcript line (`POST /session/add`)."""
        body = drop_none(
            {"session_id": session_id, "content": content, "role": role,
             "ttl_seconds": ttl_seconds, "expires_at": expires_at}
        )
        return await self._send(build("add_session", body=body))  # type: ignore[no-any-return]

    async def add_event(self, event_type: str, payload: Mapping[str, Any] | None = None) -> JSON:
        """Append an event (`POST /event`)."""
        body = {"event_type": event_type, "payload": dict(payload or {})}
        return await self._send(build("add_event", body=body))  # type: ignore[no-any-return]

    async def add_batch(self, layer: DocLayer | str, items: Sequence[Mapping[str, Any]]) -> JSON:
        """Add up to 500 items to one document layer, all or nothing (`POST /batch`)."""
        body = {"layer": layer, "items": [dict(i) for i in items]}
        return await self._send(build("add_batch", body=body))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ recall

    async def search(
        self,
        query: str,
        k: int = 5,
        mode: Mode | None = None,
        *,
        fusion: Fusion | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
    ) -> list[SearchHit]:
        """Hybrid search across layers (`GET /search`), best first."""
        params = {"query": query, "k": k, "mode": mode, "fusion": fusion, "rrf_k": rrf_k, "weight": weight}
        hits = await self._send(build("search", params=params))
        return [SearchHit.from_dict(h) for h in hits if isinstance(h, dict)]

    async def retrieve_context(
        self,
        query: str,
        limit: int = 20,
        mode: Mode | None = None,
        *,
        fusion: Fusion | None = None,
        rrf_k: float | None = None,
        weight: float | None = None,
    ) -> dict[str, list[Record]]:
        """Search grouped by layer (`GET /retrieve_context`): `{layer: [Record, ...]}`."""
        params = {"query": query, "limit": limit, "mode": mode, "fusion": fusion, "rrf_k": rrf_k, "weight": weight}
        return _core.grouped(await self._send(build("retrieve_context", params=params)))

    async def rag_search(self, query: str, limit: int = 10) -> list[Record]:
        """Rag snippets holding any word of the query, newest first (`GET /rag/search`)."""
        rows = await self._send(build("rag_search", params={"query": query, "limit": limit}))
        return [Record.from_dict(r) for r in rows if isinstance(r, dict)]

    # ------------------------------------------------------------------ records

    async def get(self, layer: str, id: str) -> Record:
        """Read one record (`GET /{layer}/{id}`)."""
        return Record.from_dict(await self._send(build("get", path={"layer": layer, "memory_id": id})))

    async def update(self, layer: str, id: str, fields: Mapping[str, Any]) -> JSON:
        """Edit allow-listed fields of a record (admin; `PUT /{layer}/{id}`)."""
        return await self._send(build("update", path={"layer": layer, "memory_id": id}, body=dict(fields)))  # type: ignore[no-any-return]

    async def delete(self, layer: str, id: str) -> None:
        """Delete a record and its vector (admin; `DELETE /{layer}/{id}`)."""
        await self._send(build("delete", path={"layer": layer, "memory_id": id}))

    # ------------------------------------------------------------------ paged lists

    async def events(self, limit: int | None = None, cursor: str | None = None) -> Page[JSON]:
        """Events, newest first (`GET /events`; `payload` is a JSON string)."""
        return await self._page(build("events", params={"limit": limit, "cursor": cursor}))

    async def session_lines(self, session_id: str, limit: int | None = None, cursor: str | None = None) -> Page[JSON]:
        """A session's transcript lines, oldest first (`GET /session/list`)."""
        params = {"session_id": session_id, "limit": limit, "cursor": cursor}
        return await self._page(build("session_lines", params=params))

    async def working_notes(self, limit: int | None = None, cursor: str | None = None) -> Page[Record]:
        """Unexpired working notes, newest first (`GET /working/list`)."""
        return await self._page(build("working_notes", params={"limit": limit, "cursor": cursor}), Record.from_dict)

    async def agents(self, limit: int | None = None, cursor: str | None = None) -> Page[JSON]:
        """Agents, newest heartbeat first (`GET /agent/list`)."""
        return await self._page(build("agents", params={"limit": limit, "cursor": cursor}))

    async def access_log(self, limit: int | None = None, cursor: str | None = None) -> Page[JSON]:
        """The access log, newest first (`GET /access/list`)."""
        return await self._page(build("access_log", params={"limit": limit, "cursor": cursor}))

    async def clients(self, limit: int | None = None, cursor: str | None = None) -> Page[JSON]:
        """Registered and observed clients (`GET /client/list`)."""
        return await self._page(build("clients", params={"limit": limit, "cursor": cursor}))

    async def issues(
        self, status_filter: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[JSON]:
        """Client issues, newest first (`GET /client/issues`; `status_filter` open or resolved)."""
        params = {"status_filter": status_filter, "limit": limit, "cursor": cursor}
        return await self._page(build("issues", params=params))

    async def quarantine(
        self, status_filter: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[QuarantineItem]:
        """Quarantine items, newest first (admin; `GET /quarantine/list`)."""
        params = {"status_filter": status_filter, "limit": limit, "cursor": cursor}
        return await self._page(build("quarantine", params=params), QuarantineItem.from_dict)

    async def paginate(self, fetch: Callable[..., Awaitable[Page[T]]], /, **kwargs: Any) -> AsyncIterator[T]:
        """Every item of a list method, following `next_cursor` page after page:
        `async for e in client.paginate(client.events, limit=50): ...`."""
        cursor: str | None = kwargs.pop("cursor", None)
        while True:
            page = await fetch(**kwargs, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def iter_events(self, limit: int | None = None) -> AsyncIterator[JSON]:
        return self.paginate(self.events, limit=limit)

    def iter_session_lines(self, session_id: str, limit: int | None = None) -> AsyncIterator[JSON]:
        return self.paginate(self.session_lines, session_id=session_id, limit=limit)

    def iter_working_notes(self, limit: int | None = None) -> AsyncIterator[Record]:
        return self.paginate(self.working_notes, limit=limit)

    def iter_agents(self, limit: int | None = None) -> AsyncIterator[JSON]:
        return self.paginate(self.agents, limit=limit)

    def iter_access_log(self, limit: int | None = None) -> AsyncIterator[JSON]:
        return self.paginate(self.access_log, limit=limit)

    def iter_clients(self, limit: int | None = None) -> AsyncIterator[JSON]:
        return self.paginate(self.clients, limit=limit)

    def iter_issues(self, status_filter: str | None = None, limit: int | None = None) -> AsyncIterator[JSON]:
        return self.paginate(self.issues, status_filter=status_filter, limit=limit)

    def iter_quarantine(self, status_filter: str | None = None, limit: int | None = None) -> AsyncIterator[QuarantineItem]:
        return self.paginate(self.quarantine, status_filter=status_filter, limit=limit)

    # ------------------------------------------------------------------ agents, clients, issues

    async def heartbeat(
        self,
        status: str | None = None,
        *,
        hostname: str | None = None,
        pid: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Record the token's agent as alive (`POST /agent/heartbeat`)."""
        body = drop_none({"status": status, "hostname": hostname, "pid": pid,
                          "meta": dict(meta) if meta is not None else None})
        return await self._send(build("heartbeat", body=body))  # type: ignore[no-any-return]

    async def register_client(
        self,
        client_id: str,
        *,
        client_name: str | None = None,
        parent_client_id: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Register a client (`POST /client/register`; `trusted`/`blocked` need role admin)."""
        body = drop_none(
            {"client_id": client_id, "client_name": client_name, "parent_client_id": parent_client_id,
             "status": status, "metadata": dict(metadata) if metadata is not None else None}
        )
        return await self._send(build("register_client", body=body))  # type: ignore[no-any-return]

    async def client_summary(self, include_children: bool | None = None) -> JSON:
        """Per-layer counts for the caller's client and its children (`GET /client/summary`)."""
        return await self._send(build("client_summary", params={"include_children": include_children}))  # type: ignore[no-any-return]

    async def report_issue(
        self,
        error_code: str,
        message: str,
        *,
        layer: str | None = None,
        payload: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> JSON:
        """File a client issue (`POST /client/issues`)."""
        body = drop_none(
            {"error_code": error_code, "message": message, "layer": layer,
             "payload": dict(payload) if payload is not None else None,
             "metadata": dict(metadata) if metadata is not None else None}
        )
        return await self._send(build("report_issue", body=body))  # type: ignore[no-any-return]

    async def resolve_issue(self, issue_id: str, resolution: str | None = None) -> JSON:
        """Resolve an open issue (admin; `POST /client/issues/{id}/resolve`)."""
        body = drop_none({"resolution": resolution})
        return await self._send(build("resolve_issue", path={"issue_id": issue_id}, body=body))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ quarantine

    async def propose(self, layer: DocLayer | str, payload: Mapping[str, Any]) -> QuarantineItem:
        """Propose a memory for review (`POST /quarantine/propose/{layer}`)."""
        return QuarantineItem.from_dict(await self._send(build("propose", path={"layer": layer}, body=dict(payload))))

    async def approve(self, item_id: str) -> JSON:
        """Approve a proposal: validated again, then stored (admin)."""
        return await self._send(build("approve", path={"item_id": item_id}))  # type: ignore[no-any-return]

    async def reject(self, item_id: str) -> JSON:
        """Reject a proposal (admin)."""
        return await self._send(build("reject", path={"item_id": item_id}))  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ audit, units, schemas

    async def verify_audit(self, anchor: Mapping[str, Any] | str | None = None) -> JSON:
        """Verify the tenant's audit chain (admin). A broken chain raises `ConflictError`."""
        body = drop_none({"anchor": dict(anchor) if isinstance(anchor, Mapping) else anchor})
        return await self._send(build("verify_audit", body=body))  # type: ignore[no-any-return]

    async def audit_head(self) -> JSON:
        """The audit chain head, to keep as an anchor (admin)."""
        return await self._send(build("audit_head"))  # type: ignore[no-any-return]

    async def create_unit(self, label: str, members: Sequence[Mapping[str, Any]]) -> JSON:
        """Group records into a unit (admin): members are `{layer, id, role}`."""
        body = {"label": label, "members": [dict(m) for m in members]}
        return await self._send(build("create_unit", body=body))  # type: ignore[no-any-return]

    async def related(self, layer: str, record_id: str) -> JSON:
        """A record's unit and its members (`GET /units/related/{layer}/{id}`)."""
        return await self._send(build("related", path={"layer": layer, "record_id": record_id}))  # type: ignore[no-any-return]

    async def schemas(self) -> dict[str, JSON]:
        """Every layer's JSON Schema, by layer."""
        body = await self._send(build("schemas"))
        return body.get("schemas", {}) if isinstance(body, dict) else {}  # type: ignore[no-any-return]

    async def schema(self, layer: str) -> JSON:
        """One layer's JSON Schema."""
        return await self._send(build("schema", path={"layer": layer}))  # type: ignore[no-any-return]
