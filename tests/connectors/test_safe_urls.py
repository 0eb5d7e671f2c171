"""Which addresses the service sends customers' requests to."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from connectors.safe_urls import (
    UnsafeUrl,
    check_destination,
    check_url,
    guarded_client,
    refusal,
)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "::1", "fd12::1"],
)
def test_loopback_and_private_addresses_are_refused_unless_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) is not None
    assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00:ec2::254",
        "0.0.0.0",
        "224.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_link_local_metadata_and_unspecified_addresses_are_always_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=True) is not None


def test_public_addresses_are_allowed() -> None:
    assert refusal(ipaddress.ip_address("93.184.216.34"), allow_private=False) is None
    assert refusal(ipaddress.ip_address("2606:4700::1111"), allow_private=False) is None


@pytest.mark.parametrize(
    "url", ["ftp://example.com/", "example.com/hook", "https://u:p@example.com/", "http:///x"]
)
def test_only_absolute_http_urls_without_credentials_pass(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url)


async def test_a_name_resolving_to_loopback_is_refused_when_saved_and_when_sent() -> None:
    with pytest.raises(UnsafeUrl, match="loopback"):
        await check_destination("http://localhost:9/hook", allow_private=False)
    async with guarded_client(allow_private=False, timeout=2) as client:
        with pytest.raises(UnsafeUrl, match="loopback"):
            await client.post("http://localhost:9/hook", content=b"{}")
        with pytest.raises(UnsafeUrl, match="metadata"):
            await client.get("http://169.254.169.254/latest/meta-data/")


async def test_redirects_are_not_followed() -> None:
    def redirect(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": "http://169.254.169.254/"})

    client = guarded_client(allow_private=True, timeout=2)
    assert client.follow_redirects is False
    await client.aclose()
    async with httpx.AsyncClient(transport=httpx.MockTransport(redirect)) as plain:
        answered = await plain.post("http://example.test/", follow_redirects=False)
    assert answered.status_code == 302
