"""The OpenAPI 3.1 document, built from the same models the endpoints validate with."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..schemas.common import ErrorResponse, PageNumbers, PageQuery
from ..schemas.fields import MAX_ID
from .endpoint import Operation

REF = "#/components/schemas/{model}"

_ERRORS = {
    400: "Malformed request body",
    401: "Missing, invalid or expired credentials",
    403: "The caller's role does not allow this",
    404: "No such resource in the caller's organization",
    409: "Conflicts with existing data, e.g. a duplicate",
    413: "Request body too large",
    415: "Request body is not JSON",
    422: "Validation failed, or an unknown query parameter; details name each field",
}


def _param_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k not in ("title", "description")}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _param_schema(prop),
        }
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": (
                {"type": "integer", "minimum": 0, "maximum": MAX_ID}
                if kind == "int"
                else {"type": "string"}
            ),
        }
        for name, kind in re.findall(r"{(\w+):(\w+)}", path)
    ]


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _ERRORS[status],
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorResponse")}}},
    }


def build_openapi(
    operations: list[Operation],
    *,
    title: str,
    version: str,
    extra_paths: dict[str, Any] | None = None,
) -> dict[str, Any]:
    inputs = {op.body for op in operations if op.body is not None}
    outputs = {op.response for op in operations if op.response is not None} | {ErrorResponse}
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in inputs]
    pairs += [(m, "serialization") for m in outputs]
    refs, defs = models_json_schema(pairs, ref_template=REF)

    paths: dict[str, Any] = {}
    for op in operations:
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
        }
        if op.description:
            entry["description"] = op.description
        params = _path_parameters(op.path)
        if op.query is not None:
            params += _query_parameters(op.query)
            if issubclass(op.query, PageQuery):
                params += _query_parameters(PageNumbers)
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
            }
        responses: dict[str, Any] = {}
        if op.response is not None:
            responses[str(op.status)] = {
                "description": op.summary,
                "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
            }
        else:
            responses[str(op.status)] = {"description": "Done; no content"}
        errors = []
        if op.role is not None:
            errors += [401, 403]
            entry["security"] = [
                {"bearerAuth": []}, {"apiKeyHeader": []}, {"consoleSession": []}
            ]
        else:
            entry["security"] = []
        if "{" in op.path:
            errors.append(404)
        if op.body is not None:
            errors += [400, 413, 415]
        # Every operation refuses query parameters it does not know, even one that takes none.
        errors.append(422)
        if op.body is not None and op.role is None:
            errors.append(401)
        errors += op.errors
        for status in sorted(set(errors)):
            responses[str(status)] = _error(status)
        entry["responses"] = responses
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = entry

    for path, item in (extra_paths or {}).items():
        paths.setdefault(path, {}).update(item)

    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "CRM data of a real-time unified inbox. Every call is scoped to the "
            'caller\'s organization. Errors: {"error": {"code", "message", "details"}}. '
            "Every answer carries X-RateLimit-Limit, X-RateLimit-Remaining and "
            "X-RateLimit-Reset (Unix seconds); past the limit, 429 RATE_LIMITED with "
            "Retry-After.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token from /api/auth/login, or an API key.",
                },
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "consoleSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "inbox_session",
                    "description": (
                        "The console's session cookie from POST /api/auth/session, accepted"
                        " only from the service's own origin with `X-Inbox-Client: console`."
                    ),
                },
            },
        },
    }


HEALTH_PATHS: dict[str, Any] = {
    path: {
        "get": {
            "operationId": name,
            "summary": summary,
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {"description": "OK"},
                **({"503": {"description": "Not ready"}} if name == "readyz" else {}),
            },
        }
    }
    for path, name, summary in (
        ("/livez", "livez", "The process is alive"),
        ("/healthz", "healthz", "Alias of /livez"),
        ("/readyz", "readyz", "Database (and broker, when configured) reachable"),
    )
}
