"""``/asyncapi.json``: the WebSocket protocol as an AsyncAPI 3.0 document."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from inbox.live.asyncapi import CLIENT_FRAMES, frame_schemas


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    # A reference to a reference (an operation's message is the channel's one).
    if isinstance(node, dict) and set(node) == {"$ref"}:
        return _resolve(document, node["$ref"])
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_asyncapi_document_describes_ws(service):
    r = service.client().get("/asyncapi.json")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["asyncapi"].startswith("3.0")
    assert doc["info"]["title"] and doc["info"]["version"]
    [channel] = doc["channels"].values()
    assert channel["address"] == "/ws"
    # Every reference points at something that exists.
    for ref in _refs(doc):
        assert _resolve(doc, ref) is not None, ref

    in_channel = [_resolve(doc, m["$ref"]) for m in channel["messages"].values()]
    actions = {op["action"]: op for op in doc["operations"].values()}
    assert set(actions) == {"send", "receive"}
    # Server frames are received by the client, client frames sent; "typing" is both.
    received = {(m := _resolve(doc, ref["$ref"]))["name"]: m
                for ref in actions["receive"]["messages"]}
    sent = {_resolve(doc, ref["$ref"])["name"] for ref in actions["send"]["messages"]}
    assert set(received) == set(frame_schemas())
    assert sent == set(CLIENT_FRAMES)
    assert len(in_channel) == len(received) + len(sent)
    for op in actions.values():
        assert _resolve(doc, op["channel"]["$ref"]) is channel or op["channel"]["$ref"] == (
            "#/channels/" + next(iter(doc["channels"])))

    # Each server frame's payload is the same schema the tests validate frames with.
    for type, standalone in frame_schemas().items():
        Draft202012Validator.check_schema(standalone)
        payload = _resolve(doc, received[type]["payload"]["$ref"])
        assert payload["properties"]["type"] == {"const": type}
        assert payload["required"] == standalone["required"]
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
