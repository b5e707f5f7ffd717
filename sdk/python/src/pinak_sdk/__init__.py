"""Python SDK of the Pinak memory API: `PinakClient` (sync) and `AsyncPinakClient` (asyncio).

    from pinak_sdk import PinakClient
    with PinakClient("http://127.0.0.1:8000", token) as pinak:
        pinak.remember("The staging database is restored every Sunday", tags=["ops"])
        for hit in pinak.search("when is staging restored"):
            print(hit.score, hit.content)
"""

from ._async import AsyncPinakClient
from ._core import RetryEvent, RetryPolicy, __version__
from ._errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    PinakError,
    UnavailableError,
    ValidationError,
)
from ._routes import NOT_COVERED, ROUTES, Route
from ._sync import PinakClient
from ._types import JSON, Page, QuarantineItem, Record, SearchHit

__all__ = [
    "AsyncPinakClient",
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "ConnectionFailed",
    "JSON",
    "NOT_COVERED",
    "NotFoundError",
    "Page",
    "PinakClient",
    "PinakError",
    "QuarantineItem",
    "ROUTES",
    "Record",
    "RetryEvent",
    "RetryPolicy",
    "Route",
    "SearchHit",
    "UnavailableError",
    "ValidationError",
    "__version__",
]
