"""Media the fake platform serves, as each platform does:

- WhatsApp: ``GET {graph}/{media_id}`` with the channel's token answers the media's
  metadata and a short-lived ``url``; that URL answers the bytes, with the same token;
- Twilio: ``MediaUrl`` answers the bytes with the account's SID and auth token
  (HTTP basic);
- Instagram: a CDN URL answers the bytes to anyone.

A file may be set to fail ``failures`` times (HTTP 500) before it is served, or to be
held back until a test releases it (``held``), to see what happens while it is fetched.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import threading
from dataclasses import dataclass
from typing import Any

JSON = {"Content-Type": "application/json"}


@dataclass
class _File:
    data: bytes
    content_type: str
    authorization: str | None
    failures: int
    # What the metadata step says of the file, for WhatsApp's media ids.
    metadata: dict[str, Any] | None = None
    held: threading.Event | None = None


class FakeMedia:
    def __init__(self, base_url: Any) -> None:
        # A callable: the server's address is known once it has started.
        self._base_url = base_url
        self._files: dict[str, _File] = {}
        self._redirects: dict[str, str] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def whatsapp(
        self,
        media_id: str,
        data: bytes,
        content_type: str,
        token: str,
        failures: int = 0,
        held: threading.Event | None = None,
    ) -> None:
        """Serve WhatsApp media ``media_id`` to requests bearing ``token``; with ``held``,
        the bytes only once that event is set."""
        bearer = f"Bearer {token}"
        metadata = {
            "messaging_product": "whatsapp",
            "url": f"{self._base_url()}/whatsapp-media/{media_id}?ext=1",
            "mime_type": content_type,
            "sha256": hashlib.sha256(data).hexdigest(),
            "file_size": len(data),
            "id": media_id,
        }
        with self._lock:
            self._files[f"/{media_id}"] = _File(b"", "", bearer, 0, metadata)
            self._files[f"/whatsapp-media/{media_id}"] = _File(
                data, content_type, bearer, failures, held=held
            )

    def twilio(
        self, account_sid: str, auth_token: str, data: bytes, content_type: str, failures: int = 0
    ) -> str:
        """A ``MediaUrl`` that serves ``data`` with the account's credentials."""
        n = next(self._ids)
        path = f"/2010-04-01/Accounts/{account_sid}/Messages/MM{n:032x}/Media/ME{n:032x}"
        basic = base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        with self._lock:
            self._files[path] = _File(data, content_type, f"Basic {basic}", failures)
        return f"{self._base_url()}{path}"

    def cdn(self, data: bytes, content_type: str, failures: int = 0) -> str:
        """A CDN URL that serves ``data`` to anyone, as Instagram's do."""
        path = f"/cdn/{next(self._ids)}.bin"
        with self._lock:
            self._files[path] = _File(data, content_type, None, failures)
        return f"{self._base_url()}{path}?oh=signed"

    def redirect(self, location: str) -> str:
        """A URL that answers with a redirect to ``location``, as Twilio's do."""
        path = f"/redirect/{next(self._ids)}"
        with self._lock:
            self._redirects[path] = location
        return f"{self._base_url()}{path}"

    def reply(self, path: str, headers: dict[str, str]) -> Any:
        """The answer to ``GET path``, or None when no media is served there."""
        from tests.connectors.fake_platform import Reply

        with self._lock:
            if path in self._redirects:
                return Reply(status=302, body=b"", headers={"Location": self._redirects[path]})
            served = self._files.get(path)
            if served is None:
                return None
            if served.authorization is not None and (
                headers.get("authorization") != served.authorization
            ):
                return Reply(
                    status=401, body={"error": {"message": "bad credentials", "code": 190}}
                )
            if served.failures > 0:
                served.failures -= 1
                return Reply(status=500, body={"error": {"message": "try later", "code": 2}})
        if served.metadata is not None:
            return Reply(body=served.metadata)
        if served.held is not None:
            served.held.wait(10)
        return Reply(body=served.data, headers={"Content-Type": served.content_type})
