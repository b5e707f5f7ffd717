"""Typed results. Each keeps the whole JSON object it was read from in `raw`, so fields the
SDK does not know about are never lost."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["JSON", "Page", "SearchHit", "Record", "QuarantineItem"]

JSON = dict[str, Any]
T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a list route. `next_cursor` (from `X-Next-Cursor`) is None on the last page."""

    items: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> T:
        return self.items[index]


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class SearchHit:
    """One hit of `GET /search`: `layer` and `score` come from the hit's `metadata`."""

    id: str
    content: str
    layer: str | None
    score: float | None
    distance: float | None
    tags: list[str]
    created_at: str | None
    client_id: str | None
    agent_id: str | None
    metadata: JSON
    raw: JSON = field(repr=False)

    @classmethod
    def from_dict(cls, d: JSON) -> SearchHit:
        meta = d.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        tags = d.get("tags")
        return cls(
            id=str(d.get("id", "")),
            content=str(d.get("content", "")),
            layer=_str(meta.get("type")),
            score=_num(meta.get("score")),
            distance=_num(d.get("distance")),
            tags=[str(t) for t in tags] if isinstance(tags, list) else [],
            created_at=_str(d.get("created_at")),
            client_id=_str(d.get("client_id")),
            agent_id=_str(d.get("agent_id")),
            metadata=meta,
            raw=d,
        )


@dataclass
class Record:
    """A stored record (`GET /{layer}/{id}`, `retrieve_context`, `rag_search`, working notes).
    `content` is the record's `content`, or a working note's `value`."""

    id: str
    layer: str | None
    content: str | None
    created_at: str | None
    raw: JSON = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    @classmethod
    def from_dict(cls, d: JSON) -> Record:
        return cls(
            id=str(d.get("id", "")),
            layer=_str(d.get("type")),
            content=_str(d.get("content")) if "content" in d else _str(d.get("value")),
            created_at=_str(d.get("created_at")),
            raw=d,
        )


@dataclass
class QuarantineItem:
    """A proposal waiting for (or after) review."""

    id: str
    layer: str
    status: str
    payload: JSON
    validation_errors: Any
    raw: JSON = field(repr=False)

    @classmethod
    def from_dict(cls, d: JSON) -> QuarantineItem:
        payload = d.get("payload")
        return cls(
            id=str(d.get("id", "")),
            layer=str(d.get("layer", "")),
            status=str(d.get("status", "")),
            payload=payload if isinstance(payload, dict) else {},
            validation_errors=d.get("validation_errors"),
            raw=d,
        )
