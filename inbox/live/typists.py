"""Typing and viewing frames: checked against the organization's conversations, then
told to it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam
from sqlmodel import col, select

from realtime.endpoint import Session
from realtime.envelope import Envelope
from realtime.protocol import FrameError

from ..db import Database
from ..errors import AuthorizationFailed, NotFound
from ..events import EventType
from ..models import Conversation
from ..schemas.fields import MAX_ID

# Typing frames come every few seconds from every typist: the conversations found are
# remembered, so a typist costs one query a minute, not one a frame. Conversations
# disappear only with their contact, whose deletion forgets the organization's at once.
KNOWN_CONVERSATIONS = 10_000
KNOWN_CONVERSATION_SECONDS = 60.0

# Built once: it runs for typing frames.
_CONVERSATION_OF_ORG = select(col(Conversation.id)).where(
    col(Conversation.id) == bindparam("conversation_id"),
    col(Conversation.organization_id) == bindparam("org_id"),
)


class KnownConversations:
    """(organization, conversation) pairs found to exist lately, the oldest dropped first.

    Only found ones are kept: a conversation created a moment after a miss is found
    on the next frame, and ids guessed by a client fill nothing.
    """

    def __init__(
        self, size: int = KNOWN_CONVERSATIONS, ttl: float = KNOWN_CONVERSATION_SECONDS
    ) -> None:
        self.size = size
        self.ttl = ttl
        self._until: OrderedDict[tuple[int, int], float] = OrderedDict()
        # Bumped by every forget: a lookup that started before one must not store what
        # it found, which may be a conversation deleted meanwhile.
        self.generation = 0

    def __contains__(self, key: tuple[int, int]) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[key]
            return False
        return True

    def add(self, key: tuple[int, int], generation: int) -> None:
        if generation != self.generation:
            return
        self._until[key] = time.monotonic() + self.ttl
        self._until.move_to_end(key)
        while len(self._until) > self.size:
            self._until.popitem(last=False)

    def forget_organization(self, org_id: int) -> None:
        self.generation += 1
        for key in [key for key in self._until if key[0] == org_id]:
            del self._until[key]


class Typists:
    """The endpoint's ``on_typing`` (or ``on_viewing``): a frame for a conversation of the
    organization becomes a ``typing`` (``viewing``) event; any other is refused."""

    def __init__(
        self,
        db: Database,
        send: Callable[[Envelope], Awaitable[None]],
        event_type: EventType = EventType.TYPING,
    ) -> None:
        self.db = db
        self._send = send
        self.event_type = event_type
        self.conversations = KnownConversations()

    async def __call__(self, session: Session, conversation_id: int, connection_id: str) -> None:
        if session.user.get("role") == "viewer":
            refused = AuthorizationFailed("A viewer only watches: it cannot type or view")
            raise FrameError(refused.code, refused.message)
        if not await self._conversation_exists(session.organization_id, conversation_id):
            # Another organization's conversation is refused in the same words as a missing
            # one: the answer must not tell which ids exist elsewhere.
            missing = NotFound(f"Conversation {conversation_id} not found")
            raise FrameError(missing.code, missing.message)
        data = {
            "conversation_id": conversation_id,
            "user_id": session.user_id,
            "connection_id": connection_id,
        }
        await self._send(Envelope.build(self.event_type, session.organization_id, data))

    async def _conversation_exists(self, org_id: int, conversation_id: int) -> bool:
        if conversation_id > MAX_ID:
            # No row has it, and the database driver would fail on it rather than find none.
            return False
        key = (org_id, conversation_id)
        if key in self.conversations:
            return True
        generation = self.conversations.generation
        params = {"conversation_id": conversation_id, "org_id": org_id}
        async with self.db.engine.connect() as connection:
            found = (await connection.execute(_CONVERSATION_OF_ORG, params)).first() is not None
        if found:
            self.conversations.add(key, generation)
        return found
