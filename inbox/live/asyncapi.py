"""The WebSocket protocol as data: a JSON Schema per frame type and an AsyncAPI 3.0 document.

The event schemas come from the same pydantic models the REST API answers
with, so an event's ``data`` is exactly the resource as REST shows it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request

from ..events import EventType
from ..schemas.canned import CannedResponsePublic
from ..schemas.channels import ChannelPublic
from ..schemas.contacts import ContactPublic
from ..schemas.conversations import ConversationPublic, MessagePublic
from ..schemas.leads import LeadPublic
from ..schemas.realtime import AgentStatus, Deleted, MessageStatusChange, MetricsSnapshot, Typing
from ..schemas.webhooks import WebhookDisabled

REF = "#/components/schemas/{model}"

# Stored events carry an id (resume from it); the others are live only.
STORED_EVENTS: dict[EventType, type[BaseModel]] = {
    EventType.LEAD_CREATED: LeadPublic,
    EventType.LEAD_UPDATED: LeadPublic,
    EventType.LEAD_DELETED: Deleted,
    EventType.CONTACT_CREATED: ContactPublic,
    EventType.CONTACT_UPDATED: ContactPublic,
    EventType.CONTACT_DELETED: Deleted,
    EventType.CONVERSATION_CREATED: ConversationPublic,
    EventType.CONVERSATION_UPDATED: ConversationPublic,
    EventType.MESSAGE_RECEIVED: MessagePublic,
    EventType.MESSAGE_SENT: MessagePublic,
    EventType.MESSAGE_DELETED: MessagePublic,
    EventType.MESSAGE_UPDATED: MessagePublic,
    EventType.MESSAGE_STATUS: MessageStatusChange,
    EventType.CHANNEL_UPDATED: ChannelPublic,
    EventType.CANNED_RESPONSE_CREATED: CannedResponsePublic,
    EventType.CANNED_RESPONSE_UPDATED: CannedResponsePublic,
    EventType.CANNED_RESPONSE_DELETED: Deleted,
    EventType.WEBHOOK_DISABLED: WebhookDisabled,
}
LIVE_EVENTS: dict[EventType, type[BaseModel]] = {
    EventType.METRICS_UPDATE: MetricsSnapshot,
    EventType.AGENT_STATUS: AgentStatus,
    EventType.TYPING: Typing,
    EventType.VIEWING: Typing,
}
# What a client may name in `?events=`, `subscribe` and `unsubscribe`.
EVENT_TYPES: frozenset[str] = frozenset({*STORED_EVENTS, *LIVE_EVENTS})

_STRING = {"type": "string"}
_INT = {"type": "integer"}
_EVENT_TYPES = {"type": "array", "items": _STRING}
_IDS = {"type": "array", "items": _INT}

# Frames for one connection: a type and their fields, no id.
CONTROL_FRAMES: dict[str, dict[str, Any]] = {
    "session.ready": {
        "connection_id": _STRING,
        "user": {"type": "object"},
        "organization_id": _INT,
        "last_event_id": _INT,
    },
    "pong": {},
    "error": {
        "code": {
            "type": "string",
            "description": (
                "INVALID_JSON, INVALID_FRAME, UNKNOWN_TYPE (no such frame type), "
                "UNKNOWN_EVENT_TYPE (the message names the unknown types and lists the valid "
                "ones), RESOURCE_NOT_FOUND (typing in a conversation the organization does not "
                "have), UNSUPPORTED, INTERNAL_ERROR, EVENT_UNREADABLE (a stored event "
                "that cannot be sent, named by `event_id` and `event_type`: it comes in "
                "the event's place, in order, and the events after it follow; reload "
                "what it concerns through REST). The connection stays open."
            ),
        },
        "message": _STRING,
        "event_id": {
            "type": "integer",
            "minimum": 1,
            "description": "EVENT_UNREADABLE only: the id of the event that cannot be sent.",
        },
        "event_type": {
            "type": "string",
            "description": "EVENT_UNREADABLE only: the type of that event.",
        },
    },
    "replay.truncated": {},
    "subscription": {
        "events": {"anyOf": [_EVENT_TYPES, {"type": "null"}]},
        "conversation_ids": {"anyOf": [_IDS, {"type": "null"}]},
    },
}
CLIENT_FRAMES: dict[str, dict[str, Any]] = {
    "ping": {},
    "subscribe": {"events": _EVENT_TYPES, "conversation_ids": _IDS},
    "unsubscribe": {"events": _EVENT_TYPES, "conversation_ids": _IDS},
    "typing": {"conversation_id": {"type": "integer", "minimum": 1}},
    "viewing": {"conversation_id": {"type": "integer", "minimum": 1}},
}
_REQUIRED_CLIENT = {"typing": ["conversation_id"], "viewing": ["conversation_id"]}
# Fields of a control frame that only some frames of its type carry.
_OPTIONAL_CONTROL = {"error": {"event_id", "event_type"}}


def _name(type: str) -> str:
    return "".join(part.title() for part in type.replace(".", "_").split("_"))


def _components() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(shared model schemas, one envelope schema per server frame type)."""
    models = {*STORED_EVENTS.values(), *LIVE_EVENTS.values()}
    refs, defs = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    frames: dict[str, dict[str, Any]] = {}
    for events, stored in ((STORED_EVENTS, True), (LIVE_EVENTS, False)):
        for type, model in events.items():
            properties: dict[str, Any] = {
                "type": {"const": type},
                "organization_id": _INT,
                "timestamp": {"type": "string", "format": "date-time"},
                "data": refs[(model, "serialization")],
            }
            required = ["type", "organization_id", "timestamp", "data"]
            if stored:
                properties = {"id": {"type": "integer", "minimum": 1}, **properties}
                required.insert(0, "id")
            frames[type] = {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            }
    for name, fields in CONTROL_FRAMES.items():
        frames[name] = {
            "type": "object",
            "properties": {"type": {"const": name}, **fields},
            "required": [
                "type",
                *(field for field in fields if field not in _OPTIONAL_CONTROL.get(name, ())),
            ],
            "additionalProperties": False,
        }
    return defs.get("$defs", {}), frames


def frame_schemas() -> dict[str, dict[str, Any]]:
    """A standalone JSON Schema for every frame the server sends, by its ``type``."""
    defs, frames = _components()
    out = {}
    for type, schema in frames.items():
        standalone = _rebase(schema)
        standalone["$defs"] = {k: _rebase(v) for k, v in defs.items()}
        out[type] = standalone
    return out


def _rebase(schema: Any) -> Any:
    """Point component refs at a standalone schema's own ``$defs``."""
    if isinstance(schema, dict):
        return {
            k: (v.replace("#/components/schemas/", "#/$defs/") if k == "$ref" else _rebase(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_rebase(v) for v in schema]
    return schema


def asyncapi_document(version: str) -> dict[str, Any]:
    defs, frames = _components()
    schemas = dict(defs)
    messages: dict[str, Any] = {}
    for type, schema in frames.items():
        name = _name(type)
        schemas[f"{name}Frame"] = schema
        messages[name] = {
            "name": type,
            "title": type,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}Frame"},
        }
    client_messages: dict[str, Any] = {}
    for type, fields in CLIENT_FRAMES.items():
        name = f"Client{_name(type)}"
        schemas[f"{name}Frame"] = {
            "type": "object",
            "properties": {"type": {"const": type}, **fields},
            "required": ["type", *_REQUIRED_CLIENT.get(type, [])],
        }
        client_messages[name] = {
            "name": type,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}Frame"},
        }
    server_refs = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    client_refs = {name: {"$ref": f"#/components/messages/{name}"} for name in client_messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Unified Inbox realtime",
            "version": version,
            "description": (
                "Events of the caller's organization over one WebSocket. Authenticate with "
                "`Authorization: Bearer <token or API key>`, `?ticket=` (from POST "
                "/api/realtime/tickets) or `?token=`. Narrow with `?events=a,b`; resume with "
                "`?last_event_id=N`: stored events after N are replayed in order, then live "
                "ones, with no gap and no duplicate. Unknown names in `?events=` are left out "
                "and reported in an `error` frame (UNKNOWN_EVENT_TYPE) right after "
                "`session.ready`. A refused handshake is answered with the REST error "
                'envelope `{"error": {"code", "message", "details"}}`: HTTP 403 with '
                "AUTHENTICATION_FAILED (`details.reason`: missing, invalid, expired or "
                "revoked) or AUTHORIZATION_FAILED (an Origin not allowed, `details.origin`; "
                "an API key without the `api` scope, `details.required_scope`), HTTP 400 "
                "with VALIDATION_ERROR for a malformed `events` or `last_event_id` or a "
                "query name written with escapes (`details.fields`), HTTP 503 with "
                "SERVICE_UNAVAILABLE when the credential cannot be checked now. Close "
                "codes: 4401 credentials expired or revoked, "
                "4008 too slow (resume), 1009 frame over 64 KiB, 1012 server restarting."
            ),
        },
        "servers": {
            "inbox": {"host": "localhost:8000", "protocol": "ws", "pathname": "/"},
        },
        "channels": {
            "realtime": {
                "address": "/ws",
                "messages": {**server_refs, **client_refs},
                "bindings": {
                    "ws": {
                        "query": {
                            "type": "object",
                            "properties": {
                                "ticket": _STRING,
                                "token": _STRING,
                                "events": _STRING,
                                "last_event_id": _INT,
                            },
                        }
                    }
                },
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/realtime"},
                "messages": [{"$ref": f"#/channels/realtime/messages/{name}"} for name in messages],
            },
            "sendFrames": {
                "action": "send",
                "channel": {"$ref": "#/channels/realtime"},
                "messages": [
                    {"$ref": f"#/channels/realtime/messages/{name}"} for name in client_messages
                ],
            },
        },
        "components": {"schemas": schemas, "messages": {**messages, **client_messages}},
    }


def _websocket_scheme(http_scheme: str) -> str:
    return "wss" if http_scheme == "https" else "ws"


class ServedAsyncApi:
    """The document as served, its server being where the caller reaches this service.

    ``INBOX_PUBLIC_URL`` names that place when set. Otherwise the request does: its Host
    header, and its scheme (which uvicorn's proxy_headers has already taken from a
    trusted proxy's X-Forwarded-Proto). The bytes are kept per host, a few hosts at
    most: the Host header is the client's to choose.
    """

    MAX_HOSTS = 16

    def __init__(self, document: dict[str, Any], public_url: str | None) -> None:
        self._document = document
        self._by_server: dict[tuple[str, str, str], bytes] = {}
        self._fixed: bytes | None = None
        if public_url:
            parts = urlsplit(public_url)
            self._fixed = self._render(
                _websocket_scheme(parts.scheme), parts.netloc, parts.path or "/"
            )

    def _render(self, protocol: str, host: str, pathname: str) -> bytes:
        server = {"host": host, "protocol": protocol, "pathname": pathname}
        return orjson.dumps({**self._document, "servers": {"inbox": server}})

    def for_request(self, request: Request) -> bytes:
        if self._fixed is not None:
            return self._fixed
        key = (_websocket_scheme(request.url.scheme), request.url.netloc, "/")
        served = self._by_server.get(key)
        if served is None:
            served = self._render(*key)
            if len(self._by_server) >= self.MAX_HOSTS:
                del self._by_server[next(iter(self._by_server))]
            self._by_server[key] = served
        return served
