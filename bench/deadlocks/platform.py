"""The platforms' send APIs, faked: WhatsApp's Graph API and Twilio's Messages.

Every reply the service sends is accepted with a new id, and the platform's statuses
for it follow as signed webhooks to either process, as they would: sent, delivered,
read (SMS: delivered) a moment apart. One send in five has its first status posted
before the send is answered, so that it arrives before the service knows the id.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..servers import HOST
from .traffic import Request as Delivery
from .traffic import Traffic

Post = Callable[[Delivery], Awaitable[Any]]


class FakePlatform:
    def __init__(self, traffic: Traffic, post: Post, seed: int, port: int) -> None:
        self.traffic = traffic
        self.post = post
        self.random = random.Random(seed)
        self.port = port
        self.sends = 0
        self._reports: set[asyncio.Task[None]] = set()
        app = Starlette(routes=[
            Route("/{phone_number_id}/messages", self.whatsapp_send, methods=["POST"]),
            Route("/2010-04-01/Accounts/{sid}/Messages.json", self.twilio_send,
                  methods=["POST"]),
        ])
        self._server = uvicorn.Server(uvicorn.Config(
            app, host=HOST, port=self.port, log_level="warning", access_log=False,
            lifespan="off",
        ))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakePlatform]:
        task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        try:
            yield self
        finally:
            self._server.should_exit = True
            await task

    async def settle(self) -> None:
        """Wait for the statuses still to be posted."""
        while self._reports:
            await asyncio.wait(list(self._reports))

    async def whatsapp_send(self, request: Request) -> JSONResponse:
        payload = await request.json()
        wamid = f"wamid.out.{self.traffic.run}.{secrets.token_hex(8)}"
        recipient = str(payload.get("to", ""))
        statuses = [self.traffic.whatsapp_status(wamid, recipient, status)
                    for status in ("sent", "delivered", "read")]
        await self._report(statuses)
        self.traffic.known.whatsapp_sent.append((wamid, recipient))
        return JSONResponse({"messaging_product": "whatsapp",
                             "contacts": [{"input": recipient, "wa_id": recipient}],
                             "messages": [{"id": wamid}]})

    async def twilio_send(self, request: Request) -> JSONResponse:
        # Parsed here: Starlette's form parser needs a package the service does not.
        form = parse_qs((await request.body()).decode())
        sid = f"SM{secrets.token_hex(16)}"
        recipient = form.get("To", [""])[0]
        statuses = [self.traffic.sms_status_of(sid, recipient, status)
                    for status in ("sent", "delivered")]
        await self._report(statuses)
        self.traffic.known.sms_sent.append((sid, recipient))
        return JSONResponse({"sid": sid, "status": "queued"}, status_code=201)

    async def _report(self, statuses: list[Delivery]) -> None:
        self.sends += 1
        if self.random.random() < 0.2:
            # Overtakes the answer to the send.
            await self.post(statuses[0])
            statuses = statuses[1:]
        delays = sorted(self.random.uniform(0.05, 1.0) for _ in statuses)
        task = asyncio.create_task(self._later(list(zip(delays, statuses, strict=True))))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def _later(self, statuses: list[tuple[float, Delivery]]) -> None:
        waited = 0.0
        for delay, status in statuses:
            await asyncio.sleep(delay - waited)
            waited = delay
            await self.post(status)
