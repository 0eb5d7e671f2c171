from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from connectors.errors import PayloadError, SendError, SignatureError
from connectors.twilio import TWIML_EMPTY_RESPONSE, TwilioAdapter
from connectors.twilio_errors import MESSAGING_ERRORS, error_text
from connectors.types import InboundMessage, OutboundMessage, StatusUpdate, WebhookRequest
from tests.connectors.fake_platform import FakePlatform, rate_limited, server_error, twilio_error
from tests.connectors.helpers import (
    TWILIO_ACCOUNT_SID,
    TWILIO_TOKEN,
    payload,
    sms_settings,
    twilio_request,
    whatsapp_settings,
)

adapter = TwilioAdapter()
OUR_NUMBER = "+15017122661"
THEIR_NUMBER = "+15558675310"


def parse(name: str) -> list[object]:
    return list(adapter.parse(twilio_request(payload("twilio", name), TWILIO_TOKEN)))


def test_acknowledgement_body() -> None:
    assert TWIML_EMPTY_RESPONSE == '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def test_sms() -> None:
    body = payload("twilio", "sms.txt")
    [message] = adapter.parse(twilio_request(body, TWILIO_TOKEN))
    assert isinstance(message, InboundMessage)
    assert message.platform == "sms"
    assert message.channel_key == OUR_NUMBER
    assert message.sender_id == THEIR_NUMBER
    assert message.sender_phone == THEIR_NUMBER
    assert message.external_id == "SM1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"
    assert message.content == "Hi, is the store open on Sunday? Ça va?"
    assert message.content_type == "text"
    assert message.attachments == []
    # Every field Twilio sent is kept.
    assert message.raw == dict(parse_qsl(body.decode()))
    assert message.raw["FromCity"] == "SAN FRANCISCO"
    assert adapter.routing_keys(twilio_request(body, None)) == [OUR_NUMBER]


def test_mms() -> None:
    [message] = parse("mms.txt")
    assert isinstance(message, InboundMessage)
    assert message.content == "Here are the photos"
    assert message.content_type == "image"
    assert [(a["type"], a["mime_type"]) for a in message.attachments] == [
        ("image", "image/jpeg"),
        ("video", "video/mp4"),
    ]
    assert message.attachments[0]["url"].endswith("/Media/ME0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d")


@pytest.mark.parametrize(
    ("name", "status", "code", "error"),
    [
        ("status_sent.txt", "sent", None, None),
        ("status_delivered.txt", "delivered", None, None),
        ("status_undelivered.txt", "failed", "30003", "Unreachable destination handset"),
        ("status_failed.txt", "failed", "30008", "Unknown error"),
    ],
)
def test_status_callbacks(name: str, status: str, code: str | None, error: str | None) -> None:
    [update] = parse(name)
    assert isinstance(update, StatusUpdate)
    assert update.external_id == "SM3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
    assert update.status == status
    assert update.error_code == code
    assert update.error_message == error
    assert update.channel_key == OUR_NUMBER
    assert update.recipient_id == THEIR_NUMBER
    # A status callback is routed by our number, which is its From, and, where that
    # names no channel, by the message it reports on and the account that sent it.
    request = twilio_request(payload("twilio", name), None)
    assert adapter.routing_keys(request) == [OUR_NUMBER]
    assert adapter.message_keys(request) == ["SM3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"]
    assert adapter.message_accounts(request) == [TWILIO_ACCOUNT_SID]


@pytest.mark.parametrize(
    ("name", "sid", "status"),
    [
        # Sent through a Messaging Service and reported before a sender was chosen: no From.
        ("status_messaging_service.txt", "SM4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a", "delivered"),
        # WhatsApp through Twilio: From and To are channel addresses, not numbers.
        ("status_whatsapp_read.txt", "SM6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c", "read"),
    ],
)
def test_a_callback_naming_no_number_of_ours_names_its_message_and_account(
    name: str, sid: str, status: str
) -> None:
    request = twilio_request(payload("twilio", name), None)
    assert adapter.routing_keys(request) == []
    assert adapter.message_keys(request) == [sid]
    assert adapter.message_accounts(request) == [TWILIO_ACCOUNT_SID]
    [update] = adapter.parse(request)
    assert isinstance(update, StatusUpdate)
    assert (update.external_id, update.status, update.channel_key) == (sid, status, None)


@pytest.mark.parametrize("sender", ["AcmeStore", "MG9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d", "", " "])
def test_a_from_that_cannot_be_our_number_is_not_a_routing_key(sender: str) -> None:
    fields = dict(parse_qsl(payload("twilio", "status_delivered.txt").decode()), From=sender)
    request = twilio_request(urlencode(fields).encode(), None)
    assert adapter.routing_keys(request) == []
    assert adapter.message_keys(request) == ["SM3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"]
    [update] = adapter.parse(request)
    assert isinstance(update, StatusUpdate) and update.channel_key is None


@pytest.mark.parametrize("name", ["sms.txt", "mms.txt"])
def test_an_incoming_message_names_no_message_to_route_by(name: str) -> None:
    # Routed by To alone: an incoming message never costs a look-up by message id.
    request = twilio_request(payload("twilio", name), None)
    assert adapter.message_keys(request) == []
    assert adapter.message_accounts(request) == []


@pytest.mark.parametrize(
    ("code", "said", "error"),
    [
        ("30007", None, "Message filtered"),
        # The documented text wins, so that one code always reads the same.
        ("30007", "Carrier violation", "Message filtered"),
        ("21211", None, "Invalid 'To' Phone Number"),
        ("39999", None, "Twilio error 39999"),
        ("39999", "Something new went wrong", "Something new went wrong"),
    ],
)
def test_an_undelivered_message_says_why_in_words(code: str, said: str | None, error: str) -> None:
    fields = dict(parse_qsl(payload("twilio", "status_undelivered_30007.txt").decode()))
    fields["ErrorCode"] = code
    if said is not None:
        fields["ErrorMessage"] = said
    [update] = adapter.parse(twilio_request(urlencode(fields).encode(), None))
    assert isinstance(update, StatusUpdate)
    assert (update.status, update.platform_status) == ("failed", "undelivered")
    assert (update.error_code, update.error_message) == (code, error)


# The titles of Twilio's error dictionary, https://www.twilio.com/docs/api/errors/<code>.
DICTIONARY = {
    "21211": "Invalid 'To' Phone Number",
    "21408": "Permission to send an SMS has not been enabled for the region indicated by the"
             " 'To' number",
    "21610": "Attempt to send to unsubscribed recipient",
    "30003": "Unreachable destination handset",
    "30007": "Message filtered",
    "30032": "Toll-Free Number Has Not Been Verified",
    "30034": "US A2P 10DLC - Message from an Unregistered Number",
}


@pytest.mark.parametrize("code", list(DICTIONARY))
def test_the_common_failures_read_as_twilio_titles_them(code: str) -> None:
    assert error_text(code) == DICTIONARY[code]


@pytest.mark.parametrize(
    "code",
    [*(str(n) for n in range(30001, 30011)), "30022", "30032", "30034",
     "21610", "21408", "21211", "21612", "21614"],
)
def test_the_messaging_error_codes_have_their_own_words(code: str) -> None:
    text = error_text(code)
    assert text and not text.startswith("Twilio error"), code
    assert text == MESSAGING_ERRORS[code]


@pytest.mark.parametrize("body", [b"%ff=1", b"MessageStatus=%C3%28"])
def test_an_unreadable_form_names_no_message_either(body: bytes) -> None:
    for keys in (adapter.message_keys, adapter.message_accounts):
        with pytest.raises(PayloadError):
            keys(twilio_request(body, None))


def test_undelivered_keeps_twilio_word() -> None:
    [update] = parse("status_undelivered.txt")
    assert isinstance(update, StatusUpdate)
    assert update.platform_status == "undelivered"


def test_steps_before_sent_are_ignored() -> None:
    assert parse("status_queued.txt") == []


def test_verify_with_rotation_and_public_url() -> None:
    body = payload("twilio", "sms.txt")
    settings = sms_settings(auth_token="new-token", previous_auth_tokens=[TWILIO_TOKEN])
    adapter.verify(twilio_request(body, TWILIO_TOKEN), settings)
    adapter.verify(twilio_request(body, "new-token"), settings)
    with pytest.raises(SignatureError):
        adapter.verify(twilio_request(body, "wrong"), settings)
    with pytest.raises(SignatureError):
        adapter.verify(twilio_request(body, None), settings)
    # Signed for the public URL, checked against the URL seen behind a proxy: rejected.
    signed = twilio_request(body, TWILIO_TOKEN)
    internal = WebhookRequest(
        method="POST",
        url="http://10.0.0.5:8000/webhooks/twilio/sms",
        headers=signed.headers,
        body=body,
    )
    with pytest.raises(SignatureError):
        adapter.verify(internal, settings)
    with pytest.raises(TypeError):
        adapter.verify(signed, whatsapp_settings())


def test_no_handshake() -> None:
    request = WebhookRequest(method="GET", url="https://x/?hub.mode=subscribe&hub.challenge=1")
    assert adapter.challenge(request, [sms_settings()]) is None


@pytest.mark.parametrize(
    "body",
    [
        b"%ff=1",
        b"Body=%C3%28",
        urlencode({"From": "+1", "Body": "no To", "MessageSid": "SM1"}).encode(),
        urlencode({"From": "+1", "To": "+2", "Body": "no sid"}).encode(),
        urlencode({"MessageStatus": "delivered", "From": "+1"}).encode(),
    ],
)
def test_malformed(body: bytes) -> None:
    with pytest.raises(PayloadError):
        adapter.parse(twilio_request(body, None))


async def test_send(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    result = await adapter.send(
        client,
        platform.base_url,
        sms_settings(),
        OutboundMessage(to=THEIR_NUMBER, text="Open 10-4 on Sundays."),
    )
    [request] = platform.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    expected_auth = httpx.BasicAuth(TWILIO_ACCOUNT_SID, TWILIO_TOKEN)
    probe = next(expected_auth.auth_flow(httpx.Request("POST", "https://x")))
    assert request.headers["authorization"] == probe.headers["authorization"]
    assert request.form() == {
        "To": [THEIR_NUMBER],
        "From": [OUR_NUMBER],
        "Body": ["Open 10-4 on Sundays."],
    }
    assert result.external_id == request.reply_json()["sid"]


async def test_send_mms(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    await adapter.send(
        client,
        platform.base_url,
        sms_settings(),
        OutboundMessage(
            to=THEIR_NUMBER,
            text="",
            attachments=[
                {"url": "https://files.example.com/a.jpg"},
                {"url": "https://files.example.com/b.jpg"},
            ],
        ),
    )
    assert platform.requests[0].form()["MediaUrl"] == [
        "https://files.example.com/a.jpg",
        "https://files.example.com/b.jpg",
    ]


async def test_invalid_number_is_permanent(
    platform: FakePlatform, client: httpx.AsyncClient
) -> None:
    platform.enqueue(twilio_error(21211, "The 'To' number +1555 is not a valid phone number."))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, sms_settings(), OutboundMessage(to="+1555", text="x")
        )
    assert not info.value.retryable
    assert info.value.code == "21211"
    assert "not a valid phone number" in info.value.message


async def test_too_many_requests(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    platform.enqueue(rate_limited(retry_after=1.5))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, sms_settings(), OutboundMessage(to=THEIR_NUMBER, text="x")
        )
    assert info.value.retryable
    assert info.value.retry_after == 1.5


async def test_server_error(platform: FakePlatform, client: httpx.AsyncClient) -> None:
    platform.enqueue(server_error(502))
    with pytest.raises(SendError) as info:
        await adapter.send(
            client, platform.base_url, sms_settings(), OutboundMessage(to=THEIR_NUMBER, text="x")
        )
    assert info.value.retryable
    assert info.value.code == "http_502"


def test_get_webhook_reads_the_query_and_signs_the_url() -> None:
    from connectors.signatures import twilio_signature

    body = payload("twilio", "sms.txt").decode()
    url = f"https://inbox.example.com/webhooks/twilio/sms?{body}"
    signature = twilio_signature(TWILIO_TOKEN, url, [])
    request = WebhookRequest(method="GET", url=url, headers={"X-Twilio-Signature": signature})
    adapter.verify(request, sms_settings())
    [message] = adapter.parse(request)
    assert isinstance(message, InboundMessage)
    assert message.content == "Hi, is the store open on Sunday? Ça va?"


@pytest.mark.parametrize(
    ("extra", "content"),
    [
        ({"Body": "", "NumMedia": "0"}, "(an empty message)"),
        ({"NumMedia": "2"}, "(a message with 2 media files that did not arrive)"),
    ],
)
def test_a_message_without_text_or_media_still_reads_as_something(
    extra: dict[str, str], content: str
) -> None:
    fields = {"From": "+15558675310", "To": "+15017122661", "MessageSid": "SM" + "a" * 32, **extra}
    [message] = TwilioAdapter().parse(
        WebhookRequest("POST", "https://inbox.example.com/webhooks/twilio",
                       {"content-type": "application/x-www-form-urlencoded"},
                       body=urlencode(fields).encode())
    )
    assert isinstance(message, InboundMessage)
    assert message.content == content
    assert message.attachments == []
