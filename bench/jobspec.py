"""The job the orchestrator hands to a generator process, as JSON on its stdin."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

JobKind = Literal["fanout", "ingest", "memory", "replay"]
DriverKind = Literal["whatsapp", "generic", "reference"]


@dataclass(frozen=True)
class Credentials:
    """What the service's fixtures created (the reference ignores all of it)."""

    token: str = ""
    api_key: str = ""
    whatsapp_secret: str = ""
    phone_number_id: str = ""


@dataclass(frozen=True)
class Job:
    kind: JobKind
    # (host, port) of each server process; clients and requests are spread over them.
    targets: list[tuple[str, int]]
    server_pids: list[int]
    server_cpus: list[int]
    loadgen_cpus: list[int]
    driver: DriverKind = "whatsapp"
    credentials: Credentials = field(default_factory=Credentials)
    run_tag: str = "r"
    clients: int = 1000
    # A client that never reads after its handshake (it should be evicted).
    stalled_client: bool = False
    # Events per second; None runs the closed loop with `in_flight` events at a time.
    rate: float | None = None
    in_flight: int = 32
    duration: float = 10.0
    warmup_events: int = 50
    drain_timeout: float = 15.0
    http_connections: int = 64
    senders: int = 50
    replay_events: int = 10_000
    replay_runs: int = 3
    settle: float = 2.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        data["credentials"] = Credentials(**data.get("credentials", {}))
        data["targets"] = [tuple(t) for t in data["targets"]]
        return cls(**data)
