from __future__ import annotations

from realtime.origins import OriginPolicy


def test_without_a_list_only_the_origin_the_handshake_was_addressed_to_may_connect() -> None:
    policy = OriginPolicy()
    assert policy("https://inbox.example", "https://inbox.example:443")
    assert not policy("http://inbox.example", "https://inbox.example")


def test_the_service_s_public_url_stands_for_its_own_origin() -> None:
    policy = OriginPolicy(own_url="https://inbox.example")
    assert policy("https://inbox.example", "http://10.0.0.5:8000")
    assert not policy("http://10.0.0.5:8000", "http://10.0.0.5:8000")


def test_a_list_adds_to_the_own_origin_and_a_star_lets_any_page_in() -> None:
    # The service serves its own console: a list of other pages never locks it out.
    listed = OriginPolicy(("https://app.example",), own_url="https://inbox.example")
    assert listed("https://app.example", "https://inbox.example")
    assert listed("https://inbox.example", "https://inbox.example")
    assert not listed("https://other.example", "https://inbox.example")
    assert OriginPolicy(("*",))("https://anything.example", "https://inbox.example")
