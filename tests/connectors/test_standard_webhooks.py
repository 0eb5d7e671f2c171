"""The Standard Webhooks signer, against the specification's published example."""

from __future__ import annotations

import pytest

from connectors import standard_webhooks as sw

# The reference libraries' fixed example (standard-webhooks, libraries/*/tests).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
PAYLOAD = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_example_signs_to_the_published_signature() -> None:
    assert sw.signature(SECRET, MSG_ID, TIMESTAMP, PAYLOAD) == EXPECTED
    headers = sw.headers([SECRET], MSG_ID, PAYLOAD, timestamp=TIMESTAMP)
    assert headers == {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(TIMESTAMP),
        "webhook-signature": EXPECTED,
    }


def test_the_published_example_verifies_and_a_changed_one_does_not() -> None:
    headers = sw.headers([SECRET], MSG_ID, PAYLOAD, timestamp=TIMESTAMP)
    sw.verify(SECRET, headers, PAYLOAD, now=TIMESTAMP + 60)
    with pytest.raises(sw.SignatureMismatch):
        sw.verify(SECRET, headers, PAYLOAD + b" ", now=TIMESTAMP)
    with pytest.raises(sw.SignatureMismatch):
        sw.verify(SECRET, {**headers, "webhook-id": "msg_other"}, PAYLOAD, now=TIMESTAMP)
    with pytest.raises(sw.SignatureMismatch, match="too far"):
        sw.verify(SECRET, headers, PAYLOAD, now=TIMESTAMP + sw.TOLERANCE_SECONDS + 1)
    # The specification's own wrong signature (last character changed).
    wrong = {**headers, "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}
    with pytest.raises(sw.SignatureMismatch):
        sw.verify(SECRET, wrong, PAYLOAD, now=TIMESTAMP)
    missing = {k: v for k, v in headers.items() if k != "webhook-timestamp"}
    with pytest.raises(sw.SignatureMismatch, match="missing"):
        sw.verify(SECRET, missing, PAYLOAD, now=TIMESTAMP)


def test_with_two_secrets_either_verifies() -> None:
    other = sw.new_secret()
    headers = sw.headers([other, SECRET], MSG_ID, PAYLOAD, timestamp=TIMESTAMP)
    entries = headers["webhook-signature"].split(" ")
    assert len(entries) == 2 and entries[1] == EXPECTED
    sw.verify(SECRET, headers, PAYLOAD, now=TIMESTAMP)
    sw.verify(other, headers, PAYLOAD, now=TIMESTAMP)


def test_new_secrets_are_32_random_bytes_in_the_whsec_form() -> None:
    first, second = sw.new_secret(), sw.new_secret()
    assert first != second and first.startswith("whsec_")
    assert len(sw.secret_bytes(first)) == 32


@pytest.mark.parametrize(
    "secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="]
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(sw.InvalidSecret):
        sw.secret_bytes(secret)
