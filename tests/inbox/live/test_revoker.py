"""What a revocation instruction closes in this process, whoever said it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inbox.live.revoker import REVOKED, Revoker
from realtime.control import Control
from realtime.hub import CLOSE_UNAUTHORIZED


@dataclass
class FakeConnection:
    organization_id: int
    subject: str | None
    closing: bool = False
    closed_with: list[int] = field(default_factory=list)

    def close(self, code: int) -> None:
        self.closing = True
        self.closed_with.append(code)


class FakeHub:
    def __init__(self, *connections: FakeConnection) -> None:
        self.all = connections

    def connections(self, org_id: int) -> list[FakeConnection]:
        return [c for c in self.all if c.organization_id == org_id]


class FakeAuth:
    def __init__(self) -> None:
        self.forgotten: list[tuple[str, int]] = []

    def forget_key(self, api_key_id: int) -> None:
        self.forgotten.append(("key", api_key_id))

    def forget_owner(self, user_id: int) -> None:
        self.forgotten.append(("owner", user_id))


def revoker(hub: FakeHub, auth: FakeAuth | None = None) -> Revoker:
    async def nowhere(control: Control) -> None:
        raise AssertionError("nothing is said in these tests")

    # Stand-ins for the hub, the authenticator and the database check.
    fakes: tuple[Any, Any, Any] = (hub, auth or FakeAuth(), None)
    return Revoker(*fakes, instruct=nowhere)


def test_a_user_s_revocation_closes_the_older_sessions_and_the_keys_named_with_it() -> None:
    older = FakeConnection(1, "user:4:2")
    newer = FakeConnection(1, "user:4:3")
    key = FakeConnection(1, "key:9")
    elsewhere = FakeConnection(2, "user:4:2")
    auth = FakeAuth()
    revoker(FakeHub(older, newer, key, elsewhere), auth).instructed(
        Control(REVOKED, 1, {"subject": "user:4", "epoch": 3, "keys": [9]})
    )
    assert older.closed_with == [CLOSE_UNAUTHORIZED] and key.closed_with == [CLOSE_UNAUTHORIZED]
    assert newer.closed_with == [] and elsewhere.closed_with == []
    assert auth.forgotten == [("owner", 4), ("key", 9)]


def test_without_an_epoch_every_session_of_the_user_closes() -> None:
    sessions = [FakeConnection(1, "user:4:2"), FakeConnection(1, "user:4")]
    revoker(FakeHub(*sessions)).instructed(Control(REVOKED, 1, {"subject": "user:4"}))
    assert all(c.closed_with == [CLOSE_UNAUTHORIZED] for c in sessions)


def test_a_key_s_revocation_closes_that_key_s_sockets_only() -> None:
    doomed, other = FakeConnection(1, "key:9"), FakeConnection(1, "key:10")
    revoker(FakeHub(doomed, other)).instructed(Control(REVOKED, 1, {"subject": "key:9"}))
    assert doomed.closed_with == [CLOSE_UNAUTHORIZED] and other.closed_with == []


def test_malformed_or_unknown_instructions_close_nothing() -> None:
    socket = FakeConnection(1, "key:9")
    instructions = [
        Control(REVOKED, 1, {}),
        Control(REVOKED, 1, {"subject": "robot:9"}),
        Control(REVOKED, 1, {"subject": "user:4", "keys": ["x"]}),
        Control("something.else", 1, {"subject": "key:9"}),
    ]
    for control in instructions:
        revoker(FakeHub(socket)).instructed(control)
    assert socket.closed_with == []
