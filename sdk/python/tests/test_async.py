"""The async client against a real pinak-api (anyio's pytest plugin, asyncio backend)."""

from __future__ import annotations

import pytest

from pinak_sdk import AsyncPinakClient, AuthError, NotFoundError, QuarantineItem

pytestmark = pytest.mark.anyio


async def test_async_remember_search_and_lists(url: str, token: str, admin_token: str, word: str) -> None:
    async with AsyncPinakClient(url, token) as client, AsyncPinakClient(url, admin_token) as admin:
        created = await client.remember(f"async {word} memory", tags=["async"])
        hits = await client.search(word, k=3)
        assert hits[0].id == created["id"] and hits[0].layer == "semantic"
        context = await client.retrieve_context(word, mode="keyword")
        assert context["semantic"][0].id == created["id"]
        for i in range(3):
            await client.add_event(f"aev-{word}", {"i": i})
        page = await client.events(limit=2)
        assert len(page) == 2 and page.next_cursor
        seen = [e async for e in client.iter_events(limit=2)]
        assert sum(f"aev-{word}" in str(e) for e in seen) == 3
        item = await client.propose("semantic", {"content": f"async {word} proposal"})
        assert isinstance(item, QuarantineItem)
        assert (await admin.approve(item.id))["status"] == "approved"
        pending = [q async for q in admin.paginate(admin.quarantine, status_filter="approved", limit=1)]
        assert item.id in {q.id for q in pending}
        with pytest.raises(NotFoundError):
            await client.get("semantic", "00000000-0000-0000-0000-000000000000")
        assert (await client.health())


async def test_async_reader_write_is_forbidden(url: str, reader_token: str) -> None:
    async with AsyncPinakClient(url, reader_token) as reader:
        with pytest.raises(AuthError):
            await reader.add_event("x", {})
