"""The sending end of the broker: events and instructions out, an outage logged once."""

from __future__ import annotations

import logging

from realtime.broker import Broker, BrokerUnavailable
from realtime.control import Control
from realtime.envelope import Envelope

log = logging.getLogger("inbox.live")


class Sender:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._down_logged = False

    async def send(self, *envelopes: Envelope) -> None:
        try:
            await self.broker.publish(*envelopes)
        except BrokerUnavailable:
            # Stored events reach everyone after the broker's reconnect catch-up.
            self._down()
        else:
            self._down_logged = False

    async def instruct(self, control: Control) -> None:
        try:
            await self.broker.publish_control(control)
        except BrokerUnavailable:
            # Every process's recheck finds a revocation in the database.
            self._down()
        else:
            self._down_logged = False

    def _down(self) -> None:
        if not self._down_logged:
            log.warning("broker unavailable: live events wait for its return")
            self._down_logged = True
