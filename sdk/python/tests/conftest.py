"""Fixtures. The tests that need a real pinak-api read it from the environment (as
tests/tests/sdk_python.rs sets it): PINAK_URL, PINAK_ADMIN_TOKEN (admin), PINAK_TOKEN
(read + write) and PINAK_READER_TOKEN (memory.read only). Without PINAK_URL they are skipped;
the retry tests run against a local stub and need nothing."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test this tree even when another copy of the SDK is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pinak_sdk import PinakClient  # noqa: E402


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set (run through tests/tests/sdk_python.rs)")
    return value


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def url() -> str:
    return _env("PINAK_URL")


@pytest.fixture(scope="session")
def admin_token() -> str:
    return _env("PINAK_ADMIN_TOKEN")


@pytest.fixture(scope="session")
def token() -> str:
    return _env("PINAK_TOKEN")


@pytest.fixture(scope="session")
def reader_token() -> str:
    return _env("PINAK_READER_TOKEN")


@pytest.fixture
def client(url: str, token: str) -> Iterator[PinakClient]:
    with PinakClient(url, token, timeout=30) as c:
        yield c


@pytest.fixture
def admin(url: str, admin_token: str) -> Iterator[PinakClient]:
    with PinakClient(url, admin_token, timeout=30) as c:
        yield c


@pytest.fixture
def reader(url: str, reader_token: str) -> Iterator[PinakClient]:
    with PinakClient(url, reader_token, timeout=30) as c:
        yield c


@pytest.fixture
def word() -> str:
    """A word no other test writes, letters only, so keyword search finds exactly ours."""
    letters = "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])
    return f"zq{letters}"
