"""Retries, against a local stub server (http.server in a thread): 503 then 200, Retry-After,
giving up, and writes that are not retried."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pinak_sdk import AsyncPinakClient, PinakClient, RetryEvent, UnavailableError


class Stub:
    """Answers `fail` 503s (optionally with Retry-After and a not_ready body), then 200 `[]`."""

    def __init__(self) -> None:
        self.fail = 0
        self.retry_after: str | None = None
        self.not_ready = False
        self.hits: list[tuple[str, str, float]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                stub.hits.append((self.command, self.path, time.monotonic()))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if len(stub.hits) <= stub.fail:
                    detail = {"status": "not_ready", "verification": "pending"} if stub.not_ready else "Request timed out"
                    body, status = json.dumps({"detail": detail}).encode(), 503
                else:
                    body, status = b"[]" if self.command == "GET" else b'{"id": "x"}', 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 503 and stub.retry_after is not None:
                    self.send_header("Retry-After", stub.retry_after)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gaps(self) -> list[float]:
        return [b[2] - a[2] for a, b in zip(self.hits, self.hits[1:])]


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.server.shutdown()
    s.server.server_close()


def test_get_retries_503_with_exponential_backoff(stub: Stub) -> None:
    stub.fail = 2
    events: list[RetryEvent] = []
    with PinakClient(stub.url, "t", backoff_base=0.1, on_retry=events.append) as c:
        assert c.search("x") == []
    assert len(stub.hits) == 3
    assert [e.attempt for e in events] == [1, 2] and all(e.reason == "503" for e in events)
    # 0.1 s then 0.2 s, each plus at most 0.1 s of jitter.
    assert 0.1 <= events[0].delay <= 0.2 and 0.2 <= events[1].delay <= 0.3
    gaps = stub.gaps()
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[1] > gaps[0] - 0.05


def test_retry_after_is_honoured(stub: Stub) -> None:
    stub.fail, stub.retry_after = 1, "1"
    with PinakClient(stub.url, "t", backoff_base=0.01) as c:
        c.events()
    assert len(stub.hits) == 2 and stub.gaps()[0] >= 0.95


def test_gives_up_after_max_retries(stub: Stub) -> None:
    stub.fail = 100
    with PinakClient(stub.url, "t", max_retries=2, backoff_base=0.01) as c:
        with pytest.raises(UnavailableError) as err:
            c.search("x")
    assert len(stub.hits) == 3 and err.value.status == 503 and err.value.detail == "Request timed out"


def test_a_write_is_not_retried_when_it_may_have_been_processed(stub: Stub) -> None:
    stub.fail = 1
    with PinakClient(stub.url, "t", backoff_base=0.01) as c:
        with pytest.raises(UnavailableError):
            c.remember("x")
    assert len(stub.hits) == 1


def test_a_write_is_retried_when_the_service_was_not_ready(stub: Stub) -> None:
    stub.fail, stub.not_ready = 2, True
    with PinakClient(stub.url, "t", backoff_base=0.01) as c:
        assert c.remember("x") == {"id": "x"}
    assert [h[0] for h in stub.hits] == ["POST"] * 3


def test_max_retries_zero_disables_retries(stub: Stub) -> None:
    stub.fail = 1
    with PinakClient(stub.url, "t", max_retries=0) as c, pytest.raises(UnavailableError):
        c.search("x")
    assert len(stub.hits) == 1


@pytest.mark.anyio
async def test_async_get_retries_503(stub: Stub) -> None:
    stub.fail = 2
    events: list[RetryEvent] = []
    async with AsyncPinakClient(stub.url, "t", backoff_base=0.05, on_retry=events.append) as c:
        assert await c.search("x") == []
    assert len(stub.hits) == 3 and len(events) == 2
    assert stub.gaps()[0] >= 0.05 and stub.gaps()[1] >= 0.1
