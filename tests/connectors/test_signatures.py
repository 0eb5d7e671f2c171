from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from connectors.errors import SignatureError
from connectors.signatures import meta_signature, twilio_signature, verify_meta, verify_twilio
from connectors.types import WebhookRequest

# Twilio's published worked example: auth token 12345, this URL and these POST
# parameters. Two spellings of it circulate, both with their documented signature:
# - twilio-python tests/unit/test_request_validator.py (Caller/From +14158675309):
#   RSOYDt4T1cUTdK1PDd93/VVr8B8=
# - TwilioDevEd/api-snippets security/signature_validation (.3.x.js, Caller/From
#   +14158675310): GvWf1cFY/Q7PnoempGyD5oXAezc=
TWILIO_DOC_TOKEN = "12345"
TWILIO_DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"


def twilio_doc_params(caller: str) -> dict[str, str]:
    return {
        "CallSid": "CA1234567890ABCDE",
        "Caller": caller,
        "Digits": "1234",
        "From": caller,
        "To": "+18005551212",
    }


def form(params: dict[str, str] | list[tuple[str, str]]) -> bytes:
    return urlencode(params).encode("ascii")


def twilio_req(url: str, body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return WebhookRequest(method="POST", url=url, headers=headers, body=body)


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
    ],
)
def test_twilio_published_example(caller: str, expected: str) -> None:
    params = twilio_doc_params(caller)
    assert twilio_signature(TWILIO_DOC_TOKEN, TWILIO_DOC_URL, params.items()) == expected
    # The same, through a request whose form body is in Twilio's own order.
    verify_twilio(twilio_req(TWILIO_DOC_URL, form(params), expected), [TWILIO_DOC_TOKEN])


def test_twilio_repeated_parameter_from_sdk_tests() -> None:
    # twilio-python: Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234 -> IK+Dwps...
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    assert twilio_signature(TWILIO_DOC_TOKEN, TWILIO_DOC_URL, params) == expected
    verify_twilio(twilio_req(TWILIO_DOC_URL, form(params), expected), [TWILIO_DOC_TOKEN])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # twilio-python: a port in the URL may or may not have been signed.
        ("https://mycompany.com:1234/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_twilio_port_variants_from_sdk_tests(url: str, expected: str) -> None:
    body = form(twilio_doc_params("+14158675309"))
    verify_twilio(twilio_req(url, body, expected), [TWILIO_DOC_TOKEN])


def test_twilio_rejects_tampered_body() -> None:
    params = twilio_doc_params("+14158675309")
    params["Digits"] = "9999"
    with pytest.raises(SignatureError, match="does not match"):
        verify_twilio(
            twilio_req(TWILIO_DOC_URL, form(params), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            [TWILIO_DOC_TOKEN],
        )


def test_twilio_rejects_other_url() -> None:
    # The signature covers the URL: a request replayed to another path fails.
    body = form(twilio_doc_params("+14158675309"))
    with pytest.raises(SignatureError):
        verify_twilio(
            twilio_req(
                "https://mycompany.com/other.php?foo=1&bar=2", body, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
            ),
            [TWILIO_DOC_TOKEN],
        )


def test_twilio_missing_and_wrong_token() -> None:
    body = form(twilio_doc_params("+14158675309"))
    with pytest.raises(SignatureError, match="missing"):
        verify_twilio(twilio_req(TWILIO_DOC_URL, body, None), [TWILIO_DOC_TOKEN])
    with pytest.raises(SignatureError):
        verify_twilio(twilio_req(TWILIO_DOC_URL, body, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), ["54321"])
    with pytest.raises(SignatureError):
        verify_twilio(twilio_req(TWILIO_DOC_URL, body, "RSOYDt4T1cUTdK1PDd93/VVr8B8="), [])


def test_twilio_rotated_token_accepted() -> None:
    body = form(twilio_doc_params("+14158675309"))
    request = twilio_req(TWILIO_DOC_URL, body, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    verify_twilio(request, ["new-token", TWILIO_DOC_TOKEN])


def test_twilio_unreadable_body_is_a_signature_failure() -> None:
    with pytest.raises(SignatureError):
        verify_twilio(twilio_req(TWILIO_DOC_URL, b"a=%ff%fe", "x"), [TWILIO_DOC_TOKEN])


# -- Meta ---------------------------------------------------------------------

UNICODE_EVENT = {"entry": [{"text": "Grüße — 日本語 👍"}]}
RAW_UTF8 = json.dumps(UNICODE_EVENT, ensure_ascii=False).encode("utf-8")
ESCAPED = json.dumps(UNICODE_EVENT, ensure_ascii=True).encode("ascii")


def meta_req(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return WebhookRequest(
        method="POST", url="https://x.test/webhooks/whatsapp", headers=headers, body=body
    )


def test_meta_signature_is_hmac_sha256_hex_of_the_body() -> None:
    # Independent check of the scheme with a fixed vector (RFC 4231-style inputs).
    assert (
        meta_signature("key", b"The quick brown fox jumps over the lazy dog")
        == "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


def test_meta_raw_bytes_are_what_is_hashed() -> None:
    # The same JSON value, serialized two ways, signs differently: a receiver
    # that re-serializes parsed JSON would reject one of Meta's deliveries.
    assert json.loads(RAW_UTF8) == json.loads(ESCAPED)
    assert RAW_UTF8 != ESCAPED
    raw_signature = meta_signature("s3cret", RAW_UTF8)
    escaped_signature = meta_signature("s3cret", ESCAPED)
    assert raw_signature != escaped_signature

    verify_meta(meta_req(RAW_UTF8, raw_signature), ["s3cret"])
    verify_meta(meta_req(ESCAPED, escaped_signature), ["s3cret"])
    with pytest.raises(SignatureError):
        verify_meta(meta_req(ESCAPED, raw_signature), ["s3cret"])
    with pytest.raises(SignatureError):
        verify_meta(meta_req(RAW_UTF8, escaped_signature), ["s3cret"])


def test_meta_accepts_upper_case_hex_and_header_any_case() -> None:
    signature = meta_signature("s3cret", RAW_UTF8)
    request = WebhookRequest(
        method="POST",
        url="https://x.test/",
        headers={"x-HUB-signature-256": "SHA256=" + signature[7:].upper()},
        body=RAW_UTF8,
    )
    verify_meta(request, ["s3cret"])


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha1=abcdef", "deadbeef", "sha256=zz", "sha256=" + "0" * 64],
)
def test_meta_rejects_missing_or_malformed(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_meta(meta_req(RAW_UTF8, header), ["s3cret"])


def test_meta_rejects_tampered_and_wrong_secret() -> None:
    signature = meta_signature("s3cret", RAW_UTF8)
    with pytest.raises(SignatureError):
        verify_meta(meta_req(RAW_UTF8 + b" ", signature), ["s3cret"])
    with pytest.raises(SignatureError):
        verify_meta(meta_req(RAW_UTF8, signature), ["other"])
    with pytest.raises(SignatureError):
        verify_meta(meta_req(RAW_UTF8, signature), [""])


def test_meta_rotation_accepts_current_and_previous() -> None:
    old = meta_req(RAW_UTF8, meta_signature("old-secret", RAW_UTF8))
    new = meta_req(RAW_UTF8, meta_signature("new-secret", RAW_UTF8))
    verify_meta(old, ["new-secret", "old-secret"])
    verify_meta(new, ["new-secret", "old-secret"])
    with pytest.raises(SignatureError):
        verify_meta(old, ["new-secret"])


def test_non_ascii_header_is_rejected_not_crashing() -> None:
    with pytest.raises(SignatureError):
        verify_meta(meta_req(RAW_UTF8, "sha256=é" * 10), ["s3cret"])
    with pytest.raises(SignatureError):
        verify_twilio(twilio_req(TWILIO_DOC_URL, b"a=1", "é"), ["12345"])
