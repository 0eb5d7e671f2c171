"""Credentials kept out of the logs, however a client spelled them.

A query string reaches the logs as the client sent it, percent-escapes and all: a
parameter is judged by its decoded name (``tok%65n`` is ``token``), and a value that
reads as a credential (an access token, a ticket, an API key) is hidden whatever its
name. The raw name stays in the line, so one can see what was sent.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from ..security import API_KEY_PREFIX

REDACTED = "[redacted]"

# Decoded names (any case) whose values are secrets: ?token=, ?ticket=, the lead form's
# ?key=, Meta's ?hub.verify_token=, and any name that says it holds one.
_SECRET_NAME = re.compile(r"token|ticket|key|secret|passw", re.IGNORECASE)
# A signed token (JWT: a base64url JSON header, always "eyJ") or one of our API keys.
_CREDENTIAL = re.compile(
    rf"eyJ[\w-]*\.[\w-]*\.[\w-]*|{re.escape(API_KEY_PREFIX)}[\w-]+", re.IGNORECASE
)
# Starlette splits parameters on "&"; ";" is split on too, so that "a=1;token=..." is
# no way around the names.
_SEPARATOR = re.compile(r"([&;])")


def _decoded(text: str) -> str:
    # Until nothing changes (a few rounds at most): an escape of an escape is still
    # read as the name it spells by anything that decodes twice.
    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _redact_parameter(parameter: str) -> str:
    raw_name, equals, raw_value = parameter.partition("=")
    name, value = _decoded(raw_name), _decoded(raw_value)
    if not equals:
        return REDACTED if _CREDENTIAL.search(name) else parameter
    if _SECRET_NAME.search(name) or _CREDENTIAL.search(value) or _CREDENTIAL.search(name):
        return f"{raw_name}={REDACTED}"
    return parameter


def redact_query(text: str) -> str:
    """``text`` (a query string, or a path with one) with every credential hidden."""
    if text.startswith("/"):
        path, question, query = text.partition("?")
    else:
        path, question, query = "", "", text
    path = _CREDENTIAL.sub(REDACTED, path)
    parts = _SEPARATOR.split(query)
    # Even indexes are parameters, odd ones the separators between them.
    parts[::2] = [_redact_parameter(part) if part else part for part in parts[::2]]
    return path + question + "".join(parts)


def redact_text(text: str) -> str:
    """``text`` (any log line) with every token and API key in it hidden: the last
    guard of every line written, whatever wrote it."""
    lowered = text.lower()
    if "eyj" not in lowered and API_KEY_PREFIX.lower() not in lowered:
        return text
    return _CREDENTIAL.sub(REDACTED, text)


class RedactQueryFilter(logging.Filter):
    """Redacts secrets from the paths uvicorn logs itself.

    uvicorn logs every WebSocket handshake ("uvicorn.error") and, where its access log
    is on, every request with the full query string: a ``?token=`` would land in the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_query(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def redact_server_logs() -> None:
    """Install the filter on uvicorn's loggers, once per process."""
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryFilter) for f in logger.filters):
            logger.addFilter(RedactQueryFilter())
