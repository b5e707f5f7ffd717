"""The sync client against a real pinak-api: writes, recall, records, lists and cursors,
quarantine, clients, issues, audit, units and schemas."""

from __future__ import annotations

import json
import uuid

from pinak_sdk import Page, PinakClient, QuarantineItem, Record, SearchHit


def test_remember_then_search_finds_it(client: PinakClient, word: str) -> None:
    created = client.remember(f"The {word} cluster is restored every Sunday", tags=["ops"])
    assert created["id"] and created["tags"] == ["ops"]
    for mode in (None, "keyword", "hybrid"):
        hits = client.search(word, k=3, mode=mode)
        assert hits and isinstance(hits[0], SearchHit)
        assert hits[0].id == created["id"], (mode, hits)
        assert word in hits[0].content and hits[0].layer == "semantic"
        assert hits[0].score is not None and hits[0].raw["id"] == created["id"]
    weighted = client.search(word, k=3, fusion="weighted", weight=0.3)
    assert weighted[0].id == created["id"]
    assert client.search(word, k=3, rrf_k=10)[0].id == created["id"]
    context = client.retrieve_context(word, limit=5, mode="keyword")
    assert [r.id for r in context["semantic"]] == [created["id"]]
    assert isinstance(context["semantic"][0], Record)


def test_every_layer_write_and_read(client: PinakClient, admin: PinakClient, word: str) -> None:
    ep = client.add_episode(f"shipped {word}", goal="ship", outcome="ok", plan=["a", "b"], salience=3)
    skill = client.add_skill(f"deploy {word}", ["build", "push"], trigger="release")
    rag = client.add_rag(f"what is {word}", "https://example.invalid/doc", f"{word} is a test word")
    note = client.add_working(f"note about {word}", session_id="s1", ttl_seconds=600)
    assert "nudges" in note
    assert client.get("episodic", ep["id"]).raw["goal"] == "ship"
    assert client.get("procedural", skill["id"]).layer == "procedural"
    assert client.get("working", note["id"]).content == f"note about {word}"
    assert [r.id for r in client.rag_search(word, limit=5)] == [rag["id"]]
    batch = client.add_batch("semantic", [{"content": f"{word} batch {i}"} for i in range(3)])
    assert batch["count"] == 3 and len(batch["ids"]) == 3
    # Admin edits and deletes.
    mem = client.remember(f"{word} before")
    assert admin.update("semantic", mem["id"], {"content": f"{word} after"})["status"] == "updated"
    assert client.get("semantic", mem["id"]).content == f"{word} after"
    assert admin.delete("semantic", mem["id"]) is None


def _all_pages(fetch, **kwargs) -> list[Page]:  # type: ignore[no-untyped-def]
    pages, cursor = [], None
    while True:
        page = fetch(**kwargs, cursor=cursor)
        pages.append(page)
        if page.next_cursor is None:
            return pages
        assert len(page) == kwargs["limit"], "only a full page has a next cursor"
        cursor = page.next_cursor


def test_lists_page_by_cursor(client: PinakClient, admin: PinakClient, word: str) -> None:
    session = f"sess-{word}"
    for i in range(5):
        client.add_event(f"ev-{word}", {"i": i})
        client.add_session(session, f"line {i}", role="user" if i % 2 else "assistant")
        client.add_working(f"{word} note {i}")
        client.report_issue(f"code_{word}", f"problem {i}", layer="semantic")
        admin.register_client(f"{word}-client-{i}", client_name=f"Client {i}")
    client.heartbeat("active", hostname="h", pid="1", meta={"w": word})

    # Session lines come back oldest first, across pages of two.
    pages = _all_pages(client.session_lines, session_id=session, limit=2)
    assert len(pages) >= 3 and all(len(p) <= 2 for p in pages)
    assert [line["content"] for p in pages for line in p] == [f"line {i}" for i in range(5)]
    assert [line["content"] for line in client.iter_session_lines(session, limit=2)] == [
        f"line {i}" for i in range(5)
    ]

    events = [e for e in client.iter_events(limit=2) if f"ev-{word}" in json.dumps(e)]
    assert len(events) == 5
    assert len(_all_pages(client.events, limit=2)) >= 3

    notes = [n for n in client.iter_working_notes(limit=2) if word in (n.content or "")]
    assert len(notes) == 5 and isinstance(notes[0], Record)
    assert len(_all_pages(client.working_notes, limit=2)) >= 3

    issues = [i for i in client.iter_issues(status_filter="open", limit=2) if i["error_code"] == f"code_{word}"]
    assert len(issues) == 5
    clients = [c for c in client.paginate(client.clients, limit=2) if c["client_id"].startswith(word)]
    assert len(clients) == 5
    assert len(_all_pages(client.access_log, limit=2)) >= 3
    assert any(e for e in client.iter_access_log(limit=2))
    agents = list(client.iter_agents(limit=1))
    assert agents and agents[0]["agent_id"]
    assert isinstance(client.agents(limit=1), Page)

    # Resolving an issue moves it to the resolved list.
    admin.resolve_issue(issues[0]["id"], "fixed")
    resolved = [i["id"] for i in client.iter_issues(status_filter="resolved", limit=2)]
    assert issues[0]["id"] in resolved


def test_quarantine_propose_list_approve_reject(client: PinakClient, admin: PinakClient, word: str) -> None:
    items = [client.propose("semantic", {"content": f"{word} proposal {i}", "tags": ["q"]}) for i in range(3)]
    assert all(isinstance(i, QuarantineItem) and i.status == "pending" for i in items)
    pending = [q for q in admin.iter_quarantine("pending", limit=2) if word in str(q.payload.get("content"))]
    assert {q.id for q in pending} == {i.id for i in items}
    assert admin.quarantine("pending", limit=2).next_cursor is not None
    assert admin.approve(items[0].id)["status"] == "approved"
    assert admin.reject(items[1].id)["status"] == "rejected"
    hits = client.search(word, k=5, mode="keyword")
    assert [h.content for h in hits] == [f"{word} proposal 0"]
    approved = {q.id for q in admin.iter_quarantine("approved", limit=2)}
    assert items[0].id in approved


def test_clients_audit_units_schemas(client: PinakClient, admin: PinakClient, word: str) -> None:
    assert admin.health()["status"] in ("ok", "ready") or admin.health()
    summary = client.client_summary(include_children=False)
    assert "summary" in summary
    assert client.register_client("sdk-test", client_name="SDK test")["client_id"] == "sdk-test"
    verified = admin.verify_audit()
    assert verified["audit"]["valid"] is True
    head = admin.audit_head()
    assert admin.verify_audit({"seq": head["seq"], "head_hash": head["head_hash"]})["audit"]["valid"]
    a = client.remember(f"{word} unit a")
    b = client.add_episode(f"{word} unit b")
    unit = admin.create_unit(
        f"unit {word}", [{"layer": "semantic", "id": a["id"], "role": "fact"},
                         {"layer": "episodic", "id": b["id"], "role": "episode"}]
    )
    related = client.related("semantic", a["id"])
    assert related["id"] == unit["id"] and len(related["members"]) == 2
    schemas = client.schemas()
    assert {"semantic", "episodic", "procedural", "rag", "working"} <= set(schemas)
    assert client.schema("semantic") == schemas["semantic"]
    assert str(uuid.UUID(a["id"]))
