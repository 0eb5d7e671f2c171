"""The parts one running service shares, built once by the app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .auth import Authenticator
from .db import Database
from .live import Live
from .media import MediaService
from .media.fetcher import MediaFetcher
from .services.channel_cache import ChannelCache
from .services.channel_secrets import ChannelSecrets
from .services.delivery import DeliveryWorker
from .services.group_commit import GroupCommit
from .services.outbox import EventSink, NullSink
from .services.profiles import ProfileFetcher
from .services.template_resync import TemplateResync
from .services.webhook_archive import ArchiveWriter
from .services.webhooks.sender import WebhookSender
from .settings import Settings


@dataclass
class AppState:
    settings: Settings
    db: Database
    # Access tokens and API keys; remembers keys for a few seconds.
    auth: Authenticator
    # Webhook deliveries commit through it, several to a transaction.
    group_commit: GroupCommit
    # Webhooks' channel lookups; the channel API clears it on every change.
    channels: ChannelCache
    # Encrypts channel secrets for storage and decrypts them for use.
    secrets: ChannelSecrets
    events: EventSink = field(default_factory=NullSink)
    # Broker, hub and /ws of this process.
    live: Live | None = None
    # The outbound delivery worker, when this process runs one.
    delivery: DeliveryWorker | None = None
    # Instagram senders' names, looked up after their delivery is stored.
    profiles: ProfileFetcher | None = None
    # Templates read again when a status webhook names one never synced.
    template_resync: TemplateResync | None = None
    # The outgoing webhooks' sender, when this process runs one.
    webhooks: WebhookSender | None = None
    # Attachments' store and links; the worker that fetches inbound ones.
    media: MediaService | None = None
    media_fetcher: MediaFetcher | None = None
    # Webhook requests recorded off the request path; None when the archive is off.
    archive: ArchiveWriter | None = None
    draining: bool = False
    # Extra /readyz checks by name, e.g. the broker when one is configured.
    readiness_checks: dict[str, Callable[[], Awaitable[object]]] = field(default_factory=dict)
