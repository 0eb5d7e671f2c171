"""The OpenAPI document: valid 3.1, complete, served with a reference page, and truthful."""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import OpenAPIV31SpecValidator
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from inbox.app import create_app
from inbox.settings import Settings

# Documents, not operations.
UNDOCUMENTED = {"/", "/dashboard", "/docs", "/openapi.json", "/asyncapi.json"}


def openapi_path(path: str) -> str:
    return re.sub(r"{(\w+):\w+}", r"{\1}", path)


async def fetch_document(app: Any) -> Any:
    # ASGITransport runs no lifespan; serving the document needs none.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://inbox") as client:
        return (await client.get("/openapi.json")).json()


def test_the_document_is_valid_openapi_3_1(service):
    r = httpx.get(f"{service.url}/openapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    document = r.json()
    assert document["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(document).validate()


def test_every_route_is_documented_with_its_methods(tmp_path):
    settings = Settings(env="test", database_url=f"sqlite:///{tmp_path / 'inbox.db'}",
                        secret_key="a-signing-key-for-this-test")
    app = create_app(settings)
    paths = asyncio.run(fetch_document(app))["paths"]
    routes = [r for r in app.routes if isinstance(r, Route) and r.path not in UNDOCUMENTED]
    assert routes
    missing = []
    for route in routes:
        documented = {m.upper() for m in paths.get(openapi_path(route.path), {})}
        for method in (route.methods or set()) - {"HEAD"}:
            if method not in documented:
                missing.append(f"{method} {route.path}")
    assert missing == []
    # And nothing is documented that the app does not serve.
    served = {(openapi_path(r.path), m) for r in routes for m in (r.methods or set())}
    extra = [(p, m.upper()) for p, item in paths.items() for m in item
             if (p, m.upper()) not in served]
    assert extra == []


def test_the_documented_operations_have_ids_and_error_responses(service):
    document = httpx.get(f"{service.url}/openapi.json").json()
    ids = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            ids.append(op["operationId"])
            assert op["responses"], (method, path)
            if op.get("security") and path.startswith("/api/"):
                assert "401" in op["responses"], (method, path)
            if path.startswith("/webhooks/") and method == "post":
                # A channel's webhook cap, or the lead form's per-address limit.
                assert "429" in op["responses"], (method, path)
    assert len(ids) == len(set(ids))


def test_docs_serve_an_html_reference(service):
    r = httpx.get(f"{service.url}/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<html" in r.text.lower()
    assert "/static/docs/docs.js" in r.text
    assert "/openapi.json" in httpx.get(f"{service.url}/static/docs/docs.js").text


# --- A bounded property-based run: whatever the input, no 5xx and no lie in the docs. ---

EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 4}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def seed(tenant: Any) -> dict[str, Any]:
    """A little of everything, so fixed-id runs reach real rows instead of only 404s."""
    conv = tenant.conversation(messages=3)
    contact = tenant.api.post("/api/contacts", json={"name": "Fuzz", "tags": ["x"]}).json()
    lead = tenant.api.post("/api/leads", json={"name": "Fuzz", "value": 10}).json()
    channel = tenant.api.post(
        "/api/channels", json={"kind": "generic", "name": "Fuzz channel"}
    ).json()
    agent, _ = tenant.user("agent")
    key = tenant.api.post("/api/api-keys", json={"name": "fuzz"}).json()
    canned = tenant.api.post(
        "/api/canned-responses", json={"short_code": "fuzz", "content": "Hello {{contact.name}}"}
    ).json()
    first_message = tenant.api.get(f"/api/conversations/{conv.id}/messages").json()["data"][0]
    png = b"\x89PNG\r\n\x1a\n" + bytes(32)
    media = tenant.api.post("/api/media", content=png, headers={"Content-Type": "image/png"})
    hook = tenant.api.post(
        "/api/webhooks", json={"url": "http://127.0.0.1:9/fuzz", "events": ["*"]}
    ).json()
    delivery = tenant.api.post(f"/api/webhooks/{hook['id']}/test").json()
    return {
        "webhook_id": hook["id"], "delivery_id": delivery["id"],
        "conversation_id": conv.id, "contact_id": contact["id"], "lead_id": lead["id"],
        "channel_id": channel["id"], "user_id": agent.id, "key_id": key["id"],
        "canned_id": canned["id"], "message_id": first_message["id"],
        "media_id": media.json()["id"],
    }


def fuzz(operation: Any, base_url: str, headers: dict[str, str], mode: GenerationMode,
         **fixed: Any) -> None:
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        database=None,
        derandomize=True,  # the same cases on every run: a failure here is reproducible
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode, **fixed))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    run()


@pytest.fixture()
def document(service) -> Any:
    return schemathesis.openapi.from_dict(httpx.get(f"{service.url}/openapi.json").json())


def test_generated_requests_get_documented_answers(service, tenant, document):
    ids = seed(tenant)
    headers = {"Authorization": tenant.api.headers["Authorization"]}
    for result in document.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == "DELETE":
            continue  # would only remove the seeded rows the other operations need
        if operation.path.endswith("/logout-all"):
            continue  # would end the session the other operations are called with
        fuzz(operation, service.url, headers, GenerationMode.POSITIVE)
        if operation.path.startswith("/api/"):
            # Input that breaks the documented constraints gets a documented 4xx. (Webhooks
            # take free-form platform payloads: there is little to break, slowly found.)
            with contextlib.suppress(Unsatisfiable):  # e.g. nothing to break at all
                fuzz(operation, service.url, headers, GenerationMode.NEGATIVE)
        names = {p.name for p in operation.path_parameters}
        if names and operation.method.upper() == "GET":
            # Real rows, not only 404s: ids of the seeded ones.
            fuzz(operation, service.url, headers, GenerationMode.POSITIVE,
                 path_parameters={n: ids[n] for n in names})
