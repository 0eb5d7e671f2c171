"""Typed endpoints: one declaration gives validation, auth, the route and its OpenAPI entry."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..auth import Principal, Role, credentials_from_headers
from ..errors import (
    MalformedRequest,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
    field_error,
    validation_failed,
)
from ..schemas.common import PageNumbers, PageQuery
from ..schemas.fields import MAX_ID
from ..services import console_sessions
from ..services.outbox import UnitOfWork, unit_of_work
from ..state import AppState
from ..telemetry.context import organization_id

Q = TypeVar("Q", bound=BaseModel | None)
B = TypeVar("B", bound=BaseModel | None)


class Context(Generic[Q, B]):
    """What an endpoint gets: the caller, validated input and the service's parts."""

    def __init__(
        self,
        request: Request,
        state: AppState,
        principal: Principal | None,
        query: Q,
        body: B,
        body_fields: set[str],
    ) -> None:
        self.request = request
        self.state = state
        self._principal = principal
        self.query = query
        self.body = body
        self.body_fields = body_fields
        self.path: dict[str, Any] = dict(request.path_params)

    @property
    def principal(self) -> Principal:
        assert self._principal is not None, "public endpoints have no principal"
        return self._principal

    @property
    def org_id(self) -> int:
        return self.principal.organization_id

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[UnitOfWork]:
        async with unit_of_work(self.state.db, self.org_id, self.state.events) as tx:
            yield tx


Handler = Callable[[Context[Any, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    role: Role | None
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    description: str | None = None
    # Error statuses beyond those the shape implies (auth, path ids, validation).
    errors: tuple[int, ...] = ()

    @property
    def openapi_path(self) -> str:
        return re.sub(r"{(\w+):\w+}", r"{\1}", self.path)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class Endpoints:
    """A group of operations under one OpenAPI tag."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        response: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        status: int = 200,
        role: Role | None = "agent",
        errors: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            doc = (handler.__doc__ or "").strip() or None
            self.operations.append(
                Operation(
                    method,
                    path,
                    handler,
                    summary,
                    self.tag,
                    role,
                    query,
                    body,
                    response,
                    status,
                    doc,
                    errors,
                )
            )
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, status=204, **kw)


def json_response(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


# orjson's own limit: a body nested deeper is not read at all.
MAX_BODY_DEPTH = 1024


async def read_json_object(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "application/json")
    if "json" not in content_type:
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json")
    raw = await request.body()
    if not raw.strip():
        raise MalformedRequest("Request body is empty; expected a JSON object")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit exceeded"):
            raise MalformedRequest(
                f"Request body is nested deeper than {MAX_BODY_DEPTH} levels"
            ) from None
        raise MalformedRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("Request body must be a JSON object")
    return data


def nul_field(value: Any, path: str = "") -> str | None:
    """The first field (dotted path) whose text holds a NUL character, if any."""
    # A loop over a stack, not recursion: a body may nest as deep as the parser reads
    # (1024 levels), past Python's recursion limit. Each entry is a value with the key
    # that names it, pushed in reverse so that they come off in document order.
    stack: list[tuple[Any, str, str]] = [(value, path, "")]
    while stack:
        item, where, key = stack.pop()
        if "\x00" in key:
            return where
        if isinstance(item, str):
            if "\x00" in item:
                return where
        elif isinstance(item, dict):
            entries = [
                (child, f"{where}.{name}" if where else str(name), str(name))
                for name, child in item.items()
            ]
            stack.extend(reversed(entries))
        elif isinstance(item, list):
            stack.extend((item[i], f"{where}.{i}", "") for i in range(len(item) - 1, -1, -1))
    return None


def reject_nul(data: Any) -> None:
    # PostgreSQL can store no NUL character in text or JSONB: refuse it as invalid
    # input on both databases rather than fail on one of them.
    where = nul_field(data)
    if where is not None:
        raise field_error(where, "must not contain NUL characters")


def query_parameters(model: type[BaseModel] | None) -> list[str]:
    """Every query parameter an operation with this query model accepts, sorted."""
    if model is None:
        return []
    names = {field.alias or name for name, field in model.model_fields.items()}
    if issubclass(model, PageQuery):
        names |= set(PageNumbers.model_fields)
    return sorted(names)


def _unknown_parameters(unknown: list[str], accepted: list[str]) -> ValidationFailed:
    known = f"accepted: {', '.join(accepted)}" if accepted else "this endpoint takes none"
    message = f"unknown query parameter; {known}"
    # Shaped like an unknown body field, with the accepted names beside it, so that a
    # client written to another API's conventions learns what to send instead.
    fields = [{"field": name, "message": message, "type": "extra_forbidden"} for name in unknown]
    return ValidationFailed(
        f"{', '.join(unknown)}: {message}", {"fields": fields, "accepted": accepted}
    )


def _disagree(alias: str, alias_value: int, name: str, value: int, meaning: str) -> list[Any]:
    message = f"{alias}={alias_value} means {name}={meaning}, not {value}; give one of them"
    return [
        {"field": alias, "message": message, "type": "conflict"},
        {"field": name, "message": message, "type": "conflict"},
    ]


def _fields(exc: ValidationError) -> list[Any]:
    return list(validation_failed(exc).details["fields"])


def _failed(fields: list[Any]) -> ValidationFailed:
    return ValidationFailed(f"{fields[0]['field']}: {fields[0]['message']}", {"fields": fields})


def parse_query(model: type[BaseModel] | None, params: QueryParams) -> BaseModel | None:
    """The validated query of an operation; an unknown parameter is an error, not ignored.

    A list paged by offset also takes ``page``/``per_page``, resolved here into the
    ``offset``/``limit`` the handler reads.
    """
    accepted = query_parameters(model)
    unknown = [name for name in params if name not in accepted]
    if unknown:
        raise _unknown_parameters(unknown, accepted)
    if model is None:
        return None
    raw: dict[str, Any] = dict(params)
    reject_nul(raw)
    numbers = PageNumbers()
    errors: list[Any] = []
    if issubclass(model, PageQuery):
        try:
            numbers = PageNumbers.model_validate(
                {name: raw.pop(name) for name in PageNumbers.model_fields if name in raw}
            )
        except ValidationError as exc:
            errors += _fields(exc)
    try:
        query = model.model_validate(raw)
    except ValidationError as exc:
        errors += _fields(exc)
    if errors:
        raise _failed(errors)
    if numbers.page is None and numbers.per_page is None:
        return query
    assert isinstance(query, PageQuery)
    given = query.model_fields_set
    limit, offset = query.limit, query.offset
    if numbers.per_page is not None:
        if "limit" in given and limit != numbers.per_page:
            errors += _disagree("per_page", numbers.per_page, "limit", limit, str(numbers.per_page))
        limit = numbers.per_page
    if numbers.page is not None:
        from_page = (numbers.page - 1) * limit
        if "offset" in given and offset != from_page:
            meaning = f"{from_page} (pages of {limit})"
            errors += _disagree("page", numbers.page, "offset", offset, meaning)
        offset = from_page
    if errors:
        raise _failed(errors)
    # PageNumbers' bounds keep limit and offset within PageQuery's, so this validates.
    return model.model_validate({**raw, "limit": limit, "offset": offset})


async def authenticate(request: Request, state: AppState) -> Principal:
    """The caller: a credential in the headers wins; without one, the console's session
    cookie, on a request the console made."""
    credential = credentials_from_headers(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    cookie = request.cookies.get(console_sessions.COOKIE)
    if credential is None and cookie:
        console_sessions.check_console_request(
            request.headers, request.url.scheme, state.settings.public_url
        )
        return await state.auth.authenticate_session(cookie)
    return await state.auth.authenticate(credential)


def as_route(op: Operation) -> Route:
    async def endpoint(request: Request) -> Response:
        state: AppState = request.app.state.inbox
        principal = None
        if op.role is not None:
            principal = await authenticate(request, state)
            organization_id.set(principal.organization_id)
            principal.require(op.role)
        # Every id in a path is a 32-bit row id; a larger one names no row (and the
        # database driver would fail on it rather than find nothing).
        if any(isinstance(v, int) and v > MAX_ID for v in request.path_params.values()):
            raise NotFound("No such resource")
        query = parse_query(op.query, request.query_params)
        body, fields = None, set[str]()
        if op.body is not None:
            data = await read_json_object(request)
            reject_nul(data)
            try:
                body = op.body.model_validate(data)
            except ValidationError as exc:
                raise validation_failed(exc) from None
            fields = set(body.model_fields_set)
        result = await op.handler(Context(request, state, principal, query, body, fields))
        if isinstance(result, Response):
            return result
        if result is None:
            return Response(status_code=204)
        return json_response(result, op.status)

    endpoint.__name__ = op.operation_id
    return Route(op.path, endpoint, methods=[op.method], name=op.operation_id)
