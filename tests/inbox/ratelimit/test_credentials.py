"""Whose budget a request spends: the credential as authentication reads it, however it
is spelled; an Authorization header that is no credential, the client's address; and
credentials refused as nobody's, the address's `invalid` budget, so that guessing
tokens or keys stops."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from support import BackgroundLoop

from tests.inbox.conftest import Service
from tests.inbox.ratelimit.budgets import budget, fresh_address, from_address, serve, stop

pytestmark = pytest.mark.backend("sqlite")


@pytest.fixture(scope="module")
def limited(database_url: str, loop: BackgroundLoop) -> Iterator[Service]:
    """Five reads and three invalid credentials an hour, behind a proxy on 127.0.0.1."""
    service, server = serve(database_url, loop, trusted_proxies=["127.0.0.1"])
    yield service
    stop(service, server)


def test_every_spelling_of_one_credential_spends_one_budget(limited):
    token = limited.token_for(limited.new_tenant().owner)
    spellings = [f"Bearer {token}", f"bearer {token}", f"BEARER {token}",
                 f"Bearer  {token}", f"Bearer \t{token}"]
    answers = [from_address(limited, fresh_address(), Authorization=spelled).get("/api/contacts")
               for spelled in spellings]
    assert [r.status_code for r in answers] == [200] * 5
    assert [budget(r)[1] for r in answers] == [4, 3, 2, 1, 0]

    refused = from_address(limited, fresh_address(), Authorization=f"bearer {token}").get(
        "/api/contacts")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"


def test_an_api_key_spends_one_budget_in_either_header(limited):
    key = limited.new_tenant().api_key("admin")
    via_bearer = from_address(limited, fresh_address(), Authorization=f"Bearer {key}")
    via_header = from_address(limited, fresh_address(), **{"X-Api-Key": key})
    statuses = [(via_bearer if n % 2 else via_header).get("/api/contacts").status_code
                for n in range(6)]
    assert statuses == [200] * 5 + [429]


def test_a_header_that_is_no_credential_spends_the_client_address_budget(limited):
    address = fresh_address()
    # Each a different header: counted under one budget, the address's.
    answers = [from_address(limited, address, Authorization=f"Basic {n}").get("/api/contacts")
               for n in range(2)]
    answers.append(from_address(limited, address, Authorization="Bearer").get("/api/contacts"))
    assert [r.status_code for r in answers] == [401, 401, 401]
    # Each shows the tighter of its budgets: the address's invalid credentials.
    assert [budget(r)[:2] for r in answers] == [(3, 2), (3, 1), (3, 0)]
    # The client's reads without any credential come from the same address's budget.
    anonymous = from_address(limited, address)
    assert [budget(anonymous.get("/api/contacts"))[1] for _ in range(2)] == [1, 0]
    assert anonymous.get("/api/contacts").status_code == 429


def test_guessing_tokens_from_one_address_is_refused_past_its_budget(limited):
    address = fresh_address()

    def guess() -> int:
        client = from_address(limited, address, Authorization=f"Bearer {secrets.token_urlsafe()}")
        return client.get("/api/contacts").status_code

    assert [guess() for _ in range(4)] == [401, 401, 401, 429]
    refused = from_address(limited, address, **{"X-Api-Key": "inbox_" + secrets.token_hex(16)})
    answer = refused.get("/api/conversations")
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "RATE_LIMITED"
    assert int(answer.headers["retry-after"]) >= 1
    assert budget(answer)[:2] == (3, 0)


def test_a_stopped_address_cannot_tell_a_right_guess_from_a_wrong_one(limited):
    tenant = limited.new_tenant()
    address = fresh_address()
    for _ in range(3):
        from_address(limited, address, Authorization="Bearer wrong").get("/api/contacts")
    right = from_address(limited, address, Authorization=f"Bearer {tenant.api_key()}")
    assert right.get("/api/contacts").status_code == 429
    # Elsewhere the credential works, and the stopped address may still ask without one.
    elsewhere = from_address(limited, fresh_address(),
                             Authorization=f"Bearer {tenant.api_key()}")
    assert elsewhere.get("/api/contacts").status_code == 200
    assert from_address(limited, address).get("/api/contacts").status_code == 401


def test_valid_expired_and_revoked_credentials_spend_nothing_of_the_invalid_budget(limited):
    tenant = limited.new_tenant()
    address = fresh_address()
    expired = limited.token_for(tenant.owner, ttl=-60)
    for credential in [expired] * 3 + [limited.token_for(tenant.owner)]:
        from_address(limited, address, Authorization=f"Bearer {credential}").get("/api/leads")
    r = from_address(limited, address, Authorization=f"Bearer {expired}").get("/api/leads")
    assert r.status_code == 401
    assert r.json()["error"]["details"]["reason"] == "expired"
    guesses = [from_address(limited, address, Authorization="Bearer nobody's").get(
        "/api/leads").status_code for _ in range(4)]
    assert guesses == [401, 401, 401, 429]


def test_guessing_ingest_keys_on_the_generic_webhook_is_refused_too(limited):
    address = fresh_address()
    statuses = [
        from_address(limited, address, **{"X-Api-Key": secrets.token_hex(16)}).post(
            "/webhooks/messages/incoming", json={"from": "+15550123456", "content": "hi"}
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
