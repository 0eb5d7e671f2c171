"""Instructions from one process to every process over the broker, apart from events.

An instruction (close the sockets of a revoked credential, and later others) is never
an event: it travels on its own channel, is never stored in the outbox, and no client
ever receives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


class ControlError(ValueError):
    """Bytes that are not an instruction."""


@dataclass(frozen=True, slots=True)
class Control:
    kind: str
    organization_id: int
    data: Mapping[str, Any] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(
            {"kind": self.kind, "organization_id": self.organization_id, "data": self.data}
        )

    @classmethod
    def parse(cls, raw: bytes | str) -> Control:
        try:
            message = orjson.loads(raw)
            kind, org_id, data = message["kind"], message["organization_id"], message["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ControlError(f"not an instruction: {exc}") from None
        if not isinstance(kind, str) or type(org_id) is not int or not isinstance(data, dict):
            raise ControlError("not an instruction: wrong field types")
        return cls(kind, org_id, data)
