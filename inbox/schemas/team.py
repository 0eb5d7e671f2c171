"""Who works in the organization, as every member may see them."""

from __future__ import annotations

from typing import Literal

from .common import Input, Output

Presence = Literal["online", "away", "offline"]


class TeamMember(Output):
    id: int
    name: str
    role: str
    presence: Presence


class Team(Output):
    data: list[TeamMember]


class PresenceChange(Input):
    status: Literal["online", "away"]
