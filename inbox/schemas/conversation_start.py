from __future__ import annotations

from pydantic import Field, model_validator

from .common import Input, Output
from .conversations import ConversationPublic, MessagePublic, ReplyCreate
from .fields import Id


class StartConversation(Input):
    channel_id: Id
    contact_id: Id | None = None
    to: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Instead of contact_id: a phone number in international format "
        "(WhatsApp, SMS) or the platform's id of the person (Instagram, generic); "
        "made a contact if unknown.",
    )
    message: ReplyCreate

    @model_validator(mode="after")
    def _one_recipient(self) -> StartConversation:
        if (self.contact_id is None) == (self.to is None):
            raise ValueError("give either contact_id or to")
        if self.message.private:
            raise ValueError("a conversation starts with a message to the customer, not a note")
        return self


class StartedConversation(Output):
    conversation: ConversationPublic
    message: MessagePublic
