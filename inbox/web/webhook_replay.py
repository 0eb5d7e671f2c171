"""A recorded webhook request run again through today's routes, code and configuration.

The request goes to the route it first reached, with the body and headers it came
with: a signature is checked again against today's secrets, the platform's message
ids make a delivery already stored a duplicate, and the replay is recorded like any
request, naming the record it replays. The generic webhook's API key and the lead
form's key are not kept: their replay runs for the organization the recorded request's
key named.

A lead, or a generic message without an `external_id`, carries nothing that would
make a second store of it a duplicate: once it (or a replay of it) was stored, it is
not replayed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlmodel import col, select
from starlette.requests import Request
from starlette.types import ASGIApp, Message

from ..errors import ApiError
from ..models import WebhookRecord
from ..services.webhook_archive import current_delivery
from ..state import AppState
from .webhook_archive import REPLAY_FOR, REPLAY_OF


class ReplayRefused(ApiError):
    status, code = 422, "WEBHOOK_NOT_REPLAYABLE"


@dataclass(frozen=True, slots=True)
class Replayed:
    replay_of: int
    outcome: str
    status: int
    # The route's answer: its JSON, or its text.
    answer: Any
    # The replay's own record, when the archive is on.
    record_id: int | None


# Routes whose key the archive does not keep; the record's organization stands for it.
_KEYED = frozenset({"generic", "lead_form"})


def _carries_its_id(record: WebhookRecord) -> bool:
    """Whether storing the request twice makes the second a duplicate: the platforms'
    message ids do, a generic message's `external_id` does, a lead has none."""
    if record.kind == "lead_form":
        return False
    if record.kind != "generic":
        return True
    try:
        body = orjson.loads(record.body)
    except orjson.JSONDecodeError:
        return True  # malformed: a replay stores nothing either way
    return not isinstance(body, dict) or bool(body.get("external_id"))


async def _stored_before(state: AppState, record_id: int) -> bool:
    async with state.db.session() as session:
        found = await session.exec(
            select(col(WebhookRecord.id))
            .where(
                (col(WebhookRecord.id) == record_id) | (col(WebhookRecord.replay_of) == record_id),
                col(WebhookRecord.outcome) == "stored",
            )
            .limit(1)
        )
        return found.first() is not None


def _route(path: str) -> Any:
    from .webhooks import routes

    return next((route for route in routes if getattr(route, "path", None) == path), None)


async def replay(app: ASGIApp, state: AppState, record: WebhookRecord) -> Replayed:
    """Run ``record``'s request again; raise ReplayRefused when it must not be."""
    assert record.id is not None
    if record.outcome == "bad_signature":
        raise ReplayRefused(
            "A request that failed its signature or key check is never replayed",
            {"outcome": record.outcome},
        )
    url = urlsplit(record.url)
    route = _route(url.path)
    if route is None or record.method != "POST":
        raise ReplayRefused(f"No webhook route takes {record.method} {url.path} any more")
    if record.kind in _KEYED and record.organization_id is None:
        raise ReplayRefused("The recorded request's key was not accepted")
    if not _carries_its_id(record) and await _stored_before(state, record.id):
        raise ReplayRefused(
            "Already stored, and it carries no id that would make a second copy a duplicate",
            {"outcome": "stored"},
        )
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": record.method,
        "scheme": url.scheme or "http",
        "server": (url.hostname or "localhost", url.port or (443 if url.scheme == "https" else 80)),
        "client": None,
        "root_path": "",
        "path": url.path,
        "raw_path": url.path.encode(),
        "query_string": url.query.encode(),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in record.headers],
        "app": app,
        "state": {},
        REPLAY_OF: record.id,
    }
    if record.kind in _KEYED:
        scope[REPLAY_FOR] = record.organization_id
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": record.body, "more_body": False}

    try:
        response = await route.endpoint(Request(scope, receive))
        status, body = response.status_code, bytes(response.body)
    except ApiError as exc:
        status, body = exc.status, orjson.dumps({"code": exc.code, "message": exc.message})
    delivery = current_delivery()
    outcome = delivery.outcome if delivery is not None and delivery.outcome else str(status)
    record_id = None
    if state.archive is not None:
        await state.archive.flush()
        async with state.db.session() as session:
            record_id = (
                await session.exec(
                    select(col(WebhookRecord.id))
                    .where(col(WebhookRecord.replay_of) == record.id)
                    .order_by(col(WebhookRecord.id).desc())
                    .limit(1)
                )
            ).first()
    try:
        answer: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = body.decode("utf-8", "replace")
    return Replayed(record.id, outcome, status, answer, record_id)
