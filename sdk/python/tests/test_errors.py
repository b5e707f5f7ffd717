"""Error answers of a real pinak-api map to the SDK's exception classes."""

from __future__ import annotations

import uuid

import pytest

from pinak_sdk import (
    AuthError,
    BadRequestError,
    ConnectionFailed,
    NotFoundError,
    PinakClient,
    PinakError,
    ValidationError,
)


def test_unknown_record_is_not_found(client: PinakClient) -> None:
    with pytest.raises(NotFoundError) as err:
        client.get("semantic", str(uuid.uuid4()))
    assert err.value.status == 404 and err.value.detail == "Memory not found"
    assert err.value.request_id and isinstance(err.value, PinakError)


def test_invalid_body_is_a_validation_error_with_the_detail_list(client: PinakClient) -> None:
    with pytest.raises(ValidationError) as err:
        client.remember("")
    assert err.value.status == 422
    assert err.value.errors and err.value.errors[0]["loc"][:2] == ["body", "content"]
    with pytest.raises(ValidationError) as err:
        client.search("x", k=1000)
    assert err.value.errors[0]["loc"][0] == "query"
    with pytest.raises(ValidationError):
        client.events(cursor="not-a-cursor")


def test_reader_writes_are_forbidden(reader: PinakClient) -> None:
    with pytest.raises(AuthError) as err:
        reader.remember("a reader cannot write")
    assert err.value.status == 403 and "memory.write" in str(err.value.detail)
    assert reader.search("anything", k=1) is not None  # but may read


def test_non_admin_review_is_forbidden(client: PinakClient) -> None:
    with pytest.raises(AuthError) as err:
        client.quarantine()
    assert err.value.status == 403


def test_bad_token_is_401(url: str) -> None:
    with PinakClient(url, "not-a-jwt") as bad, pytest.raises(AuthError) as err:
        bad.search("x")
    assert err.value.status == 401 and err.value.detail == "Invalid token"


def test_unsupported_layer_is_400(client: PinakClient) -> None:
    with pytest.raises(BadRequestError) as err:
        client.get("session", str(uuid.uuid4()))
    assert err.value.status == 400


def test_unreachable_server_is_connection_failed() -> None:
    with PinakClient("http://127.0.0.1:9", "t", max_retries=1, backoff_base=0.01) as c:
        with pytest.raises(ConnectionFailed) as err:
            c.search("x")
    assert err.value.status is None and "2 attempt" in str(err.value)
