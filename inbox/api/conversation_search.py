"""The conversation list's query: its filters, text search and keyset cursor."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, and_, exists, literal_column, or_, select
from sqlmodel import col

from ..auth import Principal
from ..errors import ValidationFailed, field_error
from ..models import Contact, Conversation, Message
from ..schemas.conversations import ConversationQuery
from .common import json_array_contains, like_pattern

# What people type around the digits of a phone number.
_PHONE_PUNCTUATION = re.compile(r"[\s().+-]")


def assignee_filter(q: ConversationQuery) -> str | None:
    """"me", "none" or None (anyone): ``view`` and ``assignee`` say the same thing, so
    two that disagree are an error rather than one silently winning."""
    from_view = {"mine": "me", "unassigned": "none", "all": None}[q.view] if q.view else None
    if q.view is not None and q.assignee is not None and from_view != q.assignee:
        raise ValidationFailed(
            f"view={q.view} and assignee={q.assignee} disagree; give one of them",
            {
                "fields": [
                    {"field": name, "message": "disagrees with the other", "type": "conflict"}
                    for name in ("view", "assignee")
                ]
            },
        )
    return from_view if q.view is not None else q.assignee


def filters(q: ConversationQuery, principal: Principal, dialect: str) -> list[Any]:
    """The WHERE conditions of the list, the organization's own rows first."""
    where: list[Any] = [col(Conversation.organization_id) == principal.organization_id]
    if q.status:
        where.append(col(Conversation.status) == q.status)
    assignee = assignee_filter(q)
    if assignee == "me":
        # An API key is nobody: comparing with its missing user id would mean "unassigned".
        if principal.user_id is None:
            field = "view" if q.view is not None else "assignee"
            raise field_error(field, "'mine' needs a signed-in user, not an API key")
        where.append(col(Conversation.assignee_id) == principal.user_id)
    elif assignee == "none":
        where.append(col(Conversation.assignee_id).is_(None))
    if q.assignee_id is not None:
        where.append(col(Conversation.assignee_id) == q.assignee_id)
    if q.channel_id is not None:
        where.append(col(Conversation.channel_id) == q.channel_id)
    if q.contact_id is not None:
        where.append(col(Conversation.contact_id) == q.contact_id)
    if q.unread is True:
        where.append(col(Conversation.unread_count) > 0)
    elif q.unread is False:
        where.append(col(Conversation.unread_count) == 0)
    if q.label:
        where.append(json_array_contains(dialect, Conversation.labels, q.label))
    if q.q is not None and q.q.strip():
        where.append(text_search(q.q.strip()))
    return where


def text_search(text: str) -> ColumnElement[bool]:
    """Case-insensitive: the text in the contact's name, phone or email, or in a message
    of the conversation. "+1 (415) 555" finds the phone +1415555... too."""
    pattern = like_pattern(text)
    in_messages = exists(
        select(literal_column("1")).where(
            col(Message.conversation_id) == col(Conversation.id),
            col(Message.content).ilike(pattern, escape="\\"),
        )
    )
    found = [
        col(Contact.name).ilike(pattern, escape="\\"),
        col(Contact.phone).ilike(pattern, escape="\\"),
        col(Contact.email).ilike(pattern, escape="\\"),
        in_messages,
    ]
    digits = _PHONE_PUNCTUATION.sub("", text)
    if digits != text and digits.isdigit():
        found.append(col(Contact.phone).ilike(like_pattern(digits), escape="\\"))
    return or_(*found)


# Newest activity first; conversations without any last, then by id, newest first: a
# total order, so that a page ends and the next begins at one place.
ORDER = (col(Conversation.last_message_at).desc().nulls_last(), col(Conversation.id).desc())


def encode_cursor(last_message_at: datetime | None, conversation_id: int) -> str:
    at = last_message_at.isoformat() if last_message_at is not None else None
    return base64.urlsafe_b64encode(orjson.dumps([at, conversation_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, int]:
    """The position a cursor names; 422 for anything this list did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, conversation_id = orjson.loads(raw)
        if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
            raise ValueError(conversation_id)
        if not 0 < conversation_id < 2**31:
            raise ValueError(conversation_id)
        when = None if at is None else datetime.fromisoformat(at)
        if when is not None and when.tzinfo is None:
            raise ValueError(at)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise field_error(
            "cursor", "is not a cursor this list gave; start again without one"
        ) from None
    return when, conversation_id


def after_cursor(at: datetime | None, conversation_id: int) -> ColumnElement[bool]:
    """The rows that come after the one at (``at``, ``conversation_id``) in ORDER."""
    activity, id_ = col(Conversation.last_message_at), col(Conversation.id)
    if at is None:
        return and_(activity.is_(None), id_ < conversation_id)
    return or_(
        activity < at,
        and_(activity == at, id_ < conversation_id),
        activity.is_(None),
    )
