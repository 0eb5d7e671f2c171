"""What Twilio's messaging error codes mean, in the words an agent reads.

A status callback of a message Twilio could not deliver names only the number
(``ErrorCode=30007``); the text here is the short title of each code in Twilio's
error dictionary (https://www.twilio.com/docs/api/errors), so that a failed reply
says why without a look-up. A code not listed keeps its number in a generic text.
"""

from __future__ import annotations

# The codes a status callback or a send can report for SMS, MMS and channel messages
# (30001-30010 are the delivery errors Twilio documents for every message).
MESSAGING_ERRORS: dict[str, str] = {
    "21211": "Invalid 'To' Phone Number",
    "21408": (
        "Permission to send an SMS has not been enabled for the region indicated by the"
        " 'To' number"
    ),
    "21610": "Attempt to send to unsubscribed recipient",
    "21612": "Message cannot be sent with the current combination of 'To' and/or 'From' parameters",
    "21614": "'To' number is not a valid mobile number",
    "30001": "Queue overflow",
    "30002": "Account suspended",
    "30003": "Unreachable destination handset",
    "30004": "Message blocked",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered",
    "30008": "Unknown error",
    "30009": "Missing inbound segment",
    "30010": "Message price exceeds max price",
    "30022": "US A2P 10DLC - Rate Limits Exceeded",
    "30032": "Toll-Free Number Has Not Been Verified",
    "30034": "US A2P 10DLC - Message from an Unregistered Number",
}


def error_text(code: str, said: str | None = None) -> str:
    """The documented short text of a Twilio error ``code``. For a code not listed:
    what Twilio ``said`` about it (``ErrorMessage``) if anything, else
    ``Twilio error <code>``. The documented text wins over ``said`` so that one code
    always reads the same."""
    code = code.strip()
    return MESSAGING_ERRORS.get(code) or (said or "").strip() or f"Twilio error {code}"
