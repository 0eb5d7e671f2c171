"""Inbound events that are not messages, applied in their arrival's transaction.

The platform's news about a channel's account (ChannelHealth) is recorded on the
channel itself, told as ``channel.updated``: a disabled channel's replies then fail
at once (``delivery``) instead of being retried against a platform that refuses them.

An activity (a call, a chat opened, a notice about the customer) is stored as a
message row of ``content_type="activity"``: it appears in the conversation, in
order, and is told as ``message.received`` like any entry of the log, so clients
need nothing new to show it. It waits for no answer, so it leaves the unread count
alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from connectors.types import Activity, ChannelHealth

from ..events import EventType
from ..models import Channel, utcnow
from ..views import channel_data
from .templates import set_status

if TYPE_CHECKING:
    from .arrival import ArrivalRun
    from .inbound_batch import InboundBatch

log = logging.getLogger("inbox.ingest")

ACTIVITY = "activity"
# The customer reaching out: like a message, it lands in their open conversation
# (opening a new one when the last is closed) and takes a pending one back to open.
# Anything else is told in the conversation the agent last had with them, as it is.
REACHING_OUT = frozenset({"call.incoming", "call.missed", "call.ended", "chat.opened"})


async def store_activity(batch: InboundBatch, run: ArrivalRun, event: Activity) -> None:
    if await batch.stored(run, event.external_id):
        run.result.duplicates += 1
        return
    contact = await batch.contact_for(
        run,
        event.platform,
        event.sender_id,
        event.sender_name,
        event.sender_phone,
        at=event.timestamp,
    )
    reaching_out = event.kind in REACHING_OUT
    conversation = None if reaching_out else await batch.latest_conversation(run, contact)
    batch.store_inbound(
        run,
        contact,
        conversation or await batch.conversation_for(run, contact),
        external_id=event.external_id,
        content=event.summary,
        content_type=ACTIVITY,
        attachments=[],
        timestamp=event.timestamp,
        platform_data={"activity": event.kind, **event.data},
        unread=False,
        opens=reaching_out,
    )


async def apply_health(run: ArrivalRun, event: ChannelHealth) -> None:
    if event.field == "message_template_status_update":
        await _template_status(run, event)
        return
    if event.health is None:
        # Worth knowing, changes nothing about sending.
        log.info("channel %s: %s %s: %s", run.channel_id, event.field, event.event, event.reason)
        run.result.ignored += 1
        return
    # The arrival's channel may be a shared cached copy: the row is read and locked here.
    channel = await run.session.get(
        Channel, run.channel_id, with_for_update=True, populate_existing=True
    )
    assert channel is not None
    reason = event.reason if event.health != "ok" else None
    if (channel.health, channel.health_reason) == (event.health, reason):
        # Told already (a retry), or nothing new: a verified account that was fine.
        run.result.ignored += 1
        return
    if event.field == "phone_number_quality_update" and channel.health == "disabled":
        # A number's quality says nothing about an account that is disabled.
        run.result.ignored += 1
        return
    now = utcnow()
    channel.health = event.health
    channel.health_reason = reason
    channel.health_changed_at = event.timestamp or now
    channel.updated_at = now
    run.session.add(channel)
    await run.session.flush()
    log.warning(
        "channel %s is now %s (%s: %s)", channel.id, channel.health, event.event, event.reason
    )
    run.result.updated += 1
    run.tell(EventType.CHANNEL_UPDATED, channel_data(channel))


async def _template_status(run: ArrivalRun, event: ChannelHealth) -> None:
    """A template approved, rejected, paused or disabled: its status changes at once,
    so a message asking for it is judged by what the platform says now."""
    if run.channel.kind != "whatsapp":
        run.result.ignored += 1
        return
    changed = await set_status(run.session, run.channel_id, event.data)
    if changed is None:
        # Never synced, or an event not understood here: the channel's list is read
        # again after the answer (TemplateResync), and brings it with all its parts.
        log.info(
            "channel %s: template event %s (template not synced yet, or event unknown)",
            run.channel_id,
            event.event,
        )
        run.result.ignored += 1
        return
    log.info(
        "channel %s: template %s (%s) is now %s",
        run.channel_id,
        changed.name,
        changed.language,
        changed.status,
    )
    run.result.updated += 1
