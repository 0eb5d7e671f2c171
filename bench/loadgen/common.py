"""What the jobs share: the driver, where clients connect, and how they authenticate."""

from __future__ import annotations

from collections.abc import Callable

from ..drivers import Driver, GenericDriver, Injector, ReferenceDriver, WhatsAppDriver
from ..httpclient import HttpPool
from ..jobspec import Job

# Clients follow one event type, so each event is one delivery per client.
EVENTS_PATH = "/ws?events=message.received"


def make_driver(job: Job) -> Driver:
    creds = job.credentials
    if job.driver == "whatsapp":
        return WhatsAppDriver(job.run_tag, creds.whatsapp_secret, creds.phone_number_id,
                              job.senders)
    if job.driver == "generic":
        return GenericDriver(job.run_tag, creds.api_key, job.senders)
    return ReferenceDriver(job.run_tag)


def make_injector(job: Job) -> Injector:
    pools = [HttpPool(host, port, job.http_connections) for host, port in job.targets]
    return Injector(make_driver(job), pools)


def close_injector(injector: Injector) -> None:
    for pool in injector.pools:
        pool.close()


def ws_headers(job: Job) -> dict[str, str]:
    token = job.credentials.token
    return {"Authorization": f"Bearer {token}"} if token else {}


def address_of(job: Job) -> Callable[[int], tuple[str, int]]:
    """Client i connects to server i mod n: the clients are shared evenly."""
    targets = job.targets
    return lambda index: targets[index % len(targets)]
