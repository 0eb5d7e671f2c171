"""The server's log lines: readable text by default, one JSON object per line with
INBOX_LOG_FORMAT=json; in both, the id of the request that caused the line, and no
credential.

A line's own fields (route, status, duration_ms, organization_id, channel_id, kind)
come from the ``extra`` it was written with, where they apply.
"""

from __future__ import annotations

import copy
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
from uvicorn.config import LOGGING_CONFIG

from ..web.redaction import redact_server_logs, redact_text
from .context import channel_id, organization_id, request_id

FIELDS = ("route", "status", "duration_ms", "organization_id", "channel_id", "kind")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What uvicorn (and websockets, through uvicorn's logger) write at ERROR when a
# WebSocket handshake is refused or fails: a client's doing, not the server's.
_HANDSHAKE_FAILURES = (
    "opening handshake failed",
    "ASGI callable returned without sending handshake",
    "ASGI callable returned without completing handshake",
)
handshake_log = logging.getLogger("inbox.ws")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served where it was written,
    and the organization and channel it concerns once known (unless the line names its
    own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        for name, var in (("organization_id", organization_id), ("channel_id", channel_id)):
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = redact_text(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = redact_text(super().format(record))
        rid = getattr(record, "request_id", None)
        return f"{text} [request {rid}]" if rid else text


class RefusedHandshakeFilter(logging.Filter):
    """uvicorn's ERROR line for a refused handshake becomes a WARNING of ours that
    says why."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not isinstance(record.msg, str):
            return True
        if not record.msg.startswith(_HANDSHAKE_FAILURES):
            return True
        error = record.exc_info[1] if record.exc_info else None
        reason = f"{type(error).__name__}: {error}" if error is not None else record.msg
        handshake_log.warning("WebSocket handshake refused: %s", reason)
        return False


def handler_for(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``log_format`` lines to ``stream`` (standard error)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    return handler


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's logging set-up (its parent process and each worker apply it), with
    its lines as JSON objects too under INBOX_LOG_FORMAT=json."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"]["default"] = {"()": JsonFormatter}
    return config


def configure_logging(log_format: str, level: str) -> None:
    """The process's own log lines, as a server process writes them (once per process;
    uvicorn's loggers are set up by `uvicorn_log_config`)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler_for(log_format))
    root.setLevel(level.upper())
    redact_server_logs()
    server = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, RefusedHandshakeFilter) for f in server.filters):
        server.addFilter(RefusedHandshakeFilter())
