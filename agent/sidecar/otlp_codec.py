"""Decoding OTLP request bodies (protobuf or JSON) and encoding responses and errors the way
OTLP/HTTP specifies: the response in the request's encoding, errors as a google.rpc.Status.
"""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})
M = TypeVar("M", bound=Message)


class BadRequest(ValueError):
    """The body cannot be read as an OTLP request; the message says why."""


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64 for bytes."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise BadRequest(f"{key} {value!r} is not hex") from exc
            else:
                value = _hex_ids_to_base64(value)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_hex_ids_to_base64(v) for v in node]
    return node


def decode(body: bytes, content_type: str, message: type[M]) -> M:
    media = content_type.split(";")[0].strip().lower()
    request: M = message()
    if media == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"body is not a valid {message.__name__} protobuf: {exc}") from exc
        return request
    if media == JSON:
        try:
            tree = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequest(f"body is not valid JSON: {exc}") from exc
        try:
            json_format.ParseDict(_hex_ids_to_base64(tree), request, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise BadRequest(f"JSON is not a valid {message.__name__}: {exc}") from exc
        return request
    raise BadRequest(f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")


def encode(message: Message, content_type: str) -> tuple[bytes, str]:
    if content_type.split(";")[0].strip().lower() == JSON:
        return json_format.MessageToJson(message, indent=None).encode(), JSON
    return message.SerializeToString(), PROTOBUF


def status(code: int, text: str, content_type: str) -> tuple[bytes, str]:
    return encode(Status(code=code, message=text), content_type)
