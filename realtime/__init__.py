"""Real-time delivery: event envelope, broker backends, connection hub, WebSocket endpoint.

Generic: authentication, the outbox and presence reporting come in as callables.
"""

from .broker import Broker, BrokerBackend, BrokerUnavailable, create_backend
from .endpoint import RealtimeEndpoint, Session, same_origin_as_request
from .envelope import DataNotEncodable, Envelope, EnvelopeError, encode_data
from .eventlog import EventLog, ReplayTruncated
from .hub import Connection, Hub, HubCounters
from .origins import origin_of, same_origin
from .presence import MemoryPresence, Presence, RedisPresence, create_presence
from .protocol import FrameError

__all__ = [
    "Broker",
    "BrokerBackend",
    "BrokerUnavailable",
    "Connection",
    "DataNotEncodable",
    "Envelope",
    "EnvelopeError",
    "EventLog",
    "FrameError",
    "Hub",
    "HubCounters",
    "MemoryPresence",
    "Presence",
    "RealtimeEndpoint",
    "RedisPresence",
    "ReplayTruncated",
    "Session",
    "create_backend",
    "create_presence",
    "encode_data",
    "origin_of",
    "same_origin",
    "same_origin_as_request",
]
