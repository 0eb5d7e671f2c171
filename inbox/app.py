"""The composition root: builds the service's parts and wires them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from connectors.safe_urls import guarded_client

from . import __version__
from .api import OPERATIONS
from .api.media import describe_files
from .auth import Authenticator
from .db import Database
from .errors import ApiError, api_error_handler, http_error_handler, unhandled_error_handler
from .live import Live
from .live.asyncapi import ServedAsyncApi, asyncapi_document
from .media import LocalMediaStore, MediaLinks, MediaService
from .media.fetcher import MediaFetcher
from .ratelimit.addresses import ClientAddress, parse_networks
from .ratelimit.limiter import create_limiter
from .ratelimit.middleware import RateLimitMiddleware
from .ratelimit.sockets import CloseWhenCapped
from .services.channel_cache import ChannelCache
from .services.channel_secrets import ChannelSecrets
from .services.delivery import DeliveryWorker
from .services.group_commit import GroupCommit
from .services.profiles import ProfileFetcher
from .services.sandbox import SandboxReports
from .services.snooze import SnoozeWaker
from .services.template_resync import TemplateResync
from .services.webhook_archive import ArchiveWriter
from .services.webhooks.client import DeliveryClient
from .services.webhooks.keys import WebhookSecrets
from .services.webhooks.sender import WebhookSender
from .settings import Settings, load_settings, with_development_key
from .state import AppState
from .telemetry import scrape
from .web import health, webhooks
from .web.endpoint import as_route
from .web.middleware import (
    UPLOAD_ENVELOPE_BYTES,
    AccessLogMiddleware,
    ApiCORSMiddleware,
    BodyLimitMiddleware,
)
from .web.openapi import HEALTH_PATHS, build_openapi
from .web.pages import page_routes
from .web.redirects import redirect_slashes
from .web.security_headers import SecurityHeadersMiddleware
from .web.unavailable import DATABASE_UNAVAILABLE, database_unavailable

log = logging.getLogger("inbox.app")


async def _cancelled(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    settings: Settings | None = None, *, started: Callable[[AppState], None] | None = None
) -> Starlette:
    """The service as one app; ``started`` runs once its start-up is done."""
    # Outside production a missing key is made (or read) here, where it is needed.
    settings = with_development_key(settings or load_settings())
    db = Database(
        settings.database_url,
        connect_timeout=settings.database_connect_timeout,
        statement_timeout=settings.database_statement_timeout,
    )
    auth = Authenticator(db, settings)
    live = Live(settings, db, auth)
    secrets = ChannelSecrets.from_settings(settings)
    state = AppState(
        settings=settings,
        db=db,
        auth=auth,
        group_commit=GroupCommit(db, live),
        channels=ChannelCache(db, secrets),
        secrets=secrets,
        events=live,
        live=live,
    )
    media = state.media = MediaService(
        LocalMediaStore(settings.media_dir),
        MediaLinks(settings.signing_key, settings.public_url),
        settings.media_max_bytes,
    )
    if settings.redis_url:
        state.readiness_checks["broker"] = live.broker_ready
    if settings.webhook_archive_days > 0:
        state.archive = ArchiveWriter(
            db,
            days=settings.webhook_archive_days,
            max_bytes=settings.webhook_archive_max_mb * 1024 * 1024,
            forged_per_minute=settings.webhook_archive_forged_per_minute,
        )
    openapi = orjson.dumps(
        # Media routes take and give files, which the typed endpoints do not describe.
        describe_files(
            build_openapi(
                OPERATIONS,
                title="Unified Inbox API",
                version=__version__,
                extra_paths={**HEALTH_PATHS, **webhooks.OPENAPI_PATHS, **scrape.OPENAPI_PATHS},
            )
        )
    )

    async def openapi_json(_request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    limiter = create_limiter(settings.redis_url)
    asyncapi = ServedAsyncApi(asyncapi_document(__version__), settings.public_url)

    async def asyncapi_json(request: Request) -> Response:
        return Response(asyncapi.for_request(request), media_type="application/json")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Each start is paired with its stop as it happens, so a failed start-up stops
        # what it started, in the reverse order.
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(state.db.dispose)
            await limiter.start()
            stack.push_async_callback(limiter.close)
            state.group_commit.start()
            stack.push_async_callback(state.group_commit.close)
            http = httpx.AsyncClient(timeout=settings.delivery_timeout)
            stack.push_async_callback(http.aclose)
            # Customers' own URLs (outgoing webhooks, generic channels' callbacks).
            guarded = guarded_client(
                allow_private=settings.webhook_allow_private, timeout=settings.webhook_timeout
            )
            stack.push_async_callback(guarded.aclose)
            sandbox_reports = SandboxReports(state.group_commit)
            # After the worker, which may schedule reports until it stops, and before
            # the group commit that applies them.
            stack.push_async_callback(sandbox_reports.close)
            state.delivery = DeliveryWorker(
                state.db,
                state.events,
                http,
                base_urls={
                    "whatsapp": settings.graph_api_url,
                    "instagram": settings.graph_api_url,
                    "sms": settings.twilio_api_url,
                },
                max_attempts=settings.delivery_max_attempts,
                request_timeout=settings.delivery_timeout,
                public_url=settings.public_url,
                sandbox_reports=sandbox_reports,
                secrets=secrets,
            )
            state.delivery.media_links = media.links
            state.delivery.callbacks_through(
                guarded, settings.webhook_retry_schedule, settings.webhook_timeout
            )
            # Outgoing webhooks post through a client of their own: see its module.
            webhook_http = DeliveryClient(allow_private=settings.webhook_allow_private)
            stack.push_async_callback(webhook_http.aclose)
            state.webhooks = WebhookSender(
                state.db,
                state.events,
                webhook_http,
                WebhookSecrets(settings.channel_secrets_keys),
                schedule=settings.webhook_retry_schedule,
                timeout=settings.webhook_timeout,
                concurrency=settings.webhook_concurrency,
                retention=timedelta(days=settings.event_retention_days),
            )
            # This process's commits wake it at once; other processes' are polled for.
            live.committed.append(state.webhooks.wake)
            # The URLs of inbound attachments are named by webhooks: guarded as well.
            media_remote = guarded_client(
                allow_private=settings.media_allow_private, timeout=settings.delivery_timeout
            )
            stack.push_async_callback(media_remote.aclose)
            state.media_fetcher = MediaFetcher(
                state.db,
                state.events,
                http,
                media.store,
                secrets,
                remote=media_remote,
                base_urls={
                    "whatsapp": settings.graph_api_url,
                    "instagram": settings.graph_api_url,
                    "sms": settings.twilio_api_url,
                },
                max_bytes=settings.media_max_bytes,
                request_timeout=settings.delivery_timeout,
            )
            profiles = state.profiles = ProfileFetcher(
                state.db, state.events, http, base_url=settings.graph_api_url
            )
            state.template_resync = TemplateResync(
                state.db, secrets, http, base_url=settings.graph_api_url
            )
            stack.push_async_callback(state.template_resync.close)
            # Stopped after the broker it reports through, and started once that is up.
            workers: list[asyncio.Task[None]] = []
            stack.push_async_callback(_cancelled, workers)
            stack.push_async_callback(live.stop)
            await live.start()
            workers.append(asyncio.create_task(state.delivery.run(), name="delivery"))
            if settings.media_fetch:
                workers.append(asyncio.create_task(state.media_fetcher.run(), name="media"))
            snooze = _app.state.snooze_waker = SnoozeWaker(state.db, state.events)
            workers.append(asyncio.create_task(snooze.run(), name="snooze"))
            workers.append(asyncio.create_task(state.webhooks.run(), name="webhooks"))
            if state.archive is not None:
                # Its last records are written once the routes have stopped answering.
                stack.push_async_callback(state.archive.close)
                workers.append(asyncio.create_task(state.archive.run(), name="webhook-archive"))
            # Before the broker it publishes to: a look-up cut short is asked again by
            # the sender's next message.
            stack.push_async_callback(profiles.close)
            profiles.start()
            stack.callback(setattr, state, "draining", True)
            if started is not None:
                started(state)
            yield

    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(
            BodyLimitMiddleware,
            max_bytes=settings.max_body_bytes,
            max_webhook_bytes=settings.max_webhook_body_bytes,
            # A file and its multipart envelope; the upload answers 413 past the file's limit.
            max_upload_bytes=settings.media_max_bytes + UPLOAD_ENVELOPE_BYTES,
        ),
    ]
    if settings.allowed_origins:
        middleware.append(
            Middleware(
                ApiCORSMiddleware,
                allow_origins=settings.allowed_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-Api-Key", "Idempotency-Key"],
                max_age=600,
            )
        )
    # Inside CORS: a browser can read a 429 only with its CORS headers.
    middleware.append(
        Middleware(
            RateLimitMiddleware,
            limiter=limiter,
            rates=settings.rate_limits,
            client_address=ClientAddress(parse_networks(settings.trusted_proxies)),
        )
    )
    app = Starlette(
        routes=[
            # Webhooks first: platforms send most of the requests.
            *webhooks.routes,
            *health.routes,
            *scrape.routes,
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/asyncapi.json", asyncapi_json, methods=["GET"]),
            *(as_route(op) for op in OPERATIONS),
            WebSocketRoute("/ws", CloseWhenCapped(live.endpoint)),
            # Last: the pages' mounts must not shadow an API route.
            *page_routes(),
        ],
        middleware=middleware,
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
            **dict.fromkeys(DATABASE_UNAVAILABLE, database_unavailable),
            Exception: unhandled_error_handler,
        },
        lifespan=lifespan,
    )
    redirect_slashes(app.router, settings.public_url)
    app.state.inbox = state
    return app
