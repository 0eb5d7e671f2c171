"""The request a log line belongs to, wherever in the process the line is written.

The HTTP middleware sets it for the request's task; work that runs in another task
on the request's behalf (the group commit's batches) carries the ids it serves and
sets them there.
"""

from __future__ import annotations

import itertools
import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "x-request-id"

# Set once per request task, never reset: an error handler that answers after the
# middleware's own frame has gone still finds it.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# Whom the request concerns, once known (its credential, the channel a webhook names):
# fields of its log lines, never labels of metrics.
organization_id: ContextVar[int | None] = ContextVar("organization_id", default=None)
channel_id: ContextVar[int | None] = ContextVar("channel_id", default=None)

# What an incoming X-Request-Id may be to be kept: anything else (a log injection,
# a megabyte) is replaced by one of ours.
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._-]{1,128}")


# Ids made here: random per process, then counted. Unique across processes and
# restarts without a system call per request; an id is a name, not a secret.
_PREFIX = os.urandom(6).hex()
_made = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_made):010x}"


def request_id_from(header: bytes | None) -> str:
    """The client's id if it is well-formed, else a new one."""
    if header is not None and _WELL_FORMED.fullmatch(header):
        return header.decode("ascii")
    return new_request_id()


def joined(ids: list[str | None]) -> str | None:
    """One value for a line written on behalf of several requests (a group-commit
    batch): their ids, comma-separated, each once."""
    unique = list(dict.fromkeys(i for i in ids if i))
    return ",".join(unique) if unique else None
