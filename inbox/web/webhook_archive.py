"""Where a webhook route meets the archive: the request is taken down as it arrives, and
recorded with its outcome when it is answered (unless its data's transaction did)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from ..ratelimit.addresses import ClientAddress
from ..services.webhook_archive import Delivery, delivery_row, kept_headers, started
from ..services.webhook_archive.record import now
from ..state import AppState

# A replay's own marks in the ASGI scope (no client can set them): the record it
# replays, and the organization whose ingest key the generic webhook's record passed.
REPLAY_OF = "inbox.replay_of"
REPLAY_FOR = "inbox.replay_for"
_PEERS = ClientAddress(())


async def arrived(request: Request, state: AppState, kind: str) -> Delivery | None:
    """The request to archive, made the current one; None when the archive is off."""
    if state.archive is None or request.method != "POST":
        started(None)
        return None
    scope = request.scope
    delivery = Delivery(
        kind=kind,
        method=request.method,
        url=_kept_url(request, kind),
        headers=kept_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        ),
        body=b"",
        client=_PEERS(scope),
        received_at=now(),
        replay_of=scope.get(REPLAY_OF),
    )
    started(delivery)
    # Read here, where a body over the limit fails as the route would.
    delivery.body = await request.body()
    return delivery


def _kept_url(request: Request, kind: str) -> str:
    """The URL to keep: the lead form's publishable key is a credential, and its replay
    runs for the organization the key named. (Twilio signs the whole URL: kept as is.)"""
    if kind != "lead_form" or "key" not in request.query_params:
        return str(request.url)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
    return str(request.url.replace(query=urlencode(kept)))


def answered(
    state: AppState,
    delivery: Delivery | None,
    outcome: str | None,
    status: int,
    error: str | None = None,
) -> None:
    """Record ``delivery`` unless the group commit already wrote it with its data."""
    if delivery is None:
        return
    if outcome == "bad_signature" and delivery.outcome == "unknown_channel":
        # Unsigned by any secret here, but naming no channel: replayable once its
        # channel is connected and its secret verifies it.
        outcome = None
    delivery.outcome = outcome or delivery.outcome or "stored"
    if delivery.committed or state.archive is None:
        return
    row = delivery_row(delivery, delivery.outcome, status=status, error=error)
    state.archive.put(row, client=delivery.client)
