"""The errors an adapter may raise; each maps to one answer of the application."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error raised on purpose by this package."""


class SignatureError(ConnectorError):
    """The request is not proven to come from the platform (answer 401)."""


class PayloadError(ConnectorError):
    """The body is not what the platform documents (answer 400).

    ``where`` names the offending part, e.g. ``entry[0].changes[1].value``;
    ``details`` maps each invalid field to what is wrong with it, for bodies
    validated field by field (generic messages, lead forms).
    """

    def __init__(
        self, message: str, where: str | None = None, details: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message
        self.where = where
        self.details = details or {}


class PlatformCallError(ConnectorError):
    """A call to a platform's API failed: what every outbound call reports.

    ``retryable`` says whether the same call could succeed later (timeouts, rate
    limits, server errors); ``retry_after`` is the delay the platform asked for,
    in seconds, when it gave one; ``code`` the platform's error code or one of ours.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        code: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(f"[{code}] {message}" if code else message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.retry_after = retry_after
        self.status_code = status_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, retryable={self.retryable}, "
            f"code={self.code!r}, retry_after={self.retry_after!r}, "
            f"status_code={self.status_code!r})"
        )


class SendError(PlatformCallError):
    """An outbound message was not accepted by the platform.

    ``retryable`` says whether sending the same message again could succeed
    (timeouts, rate limits, server errors); ``retry_after`` is the delay the
    platform asked for, in seconds, when it gave one. ``code`` is the
    platform's own error code when it sent one (``"131047"``, ``"21211"``),
    or one of ours: ``"timeout"`` (the request may have reached the platform),
    ``"connect_error"`` (it did not), ``"http_<status>"``, ``"bad_response"``
    (the platform answered success in a form we cannot read: do not resend),
    ``"unsupported"`` (this message cannot be sent on this channel).
    """
