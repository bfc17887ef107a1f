"""Decoding OTLP request bodies (protobuf or JSON) and encoding responses and errors the way
OTLP/HTTP specifies: the response in the request's encoding, errors as a google.rpc.Status.

Bodies come from anyone who can reach the port, so decoding is bounded by construction: a
compressed body is inflated as it arrives and never past the body limit (`Inflater`); a JSON
body is checked (nesting depth, integer length, lone surrogates, top-level shape) before
protobuf's JSON parser sees it, because that parser answers some malformed input with
RecursionError, ValueError or SystemError rather than its own ParseError. Every problem is a
`BadRequest` (HTTP 400, gRPC INVALID_ARGUMENT) or a `TooLarge` (HTTP 413) with the reason.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})
# Deeper than any OTLP request needs (an attribute value sits at depth 10, each nested
# key-value list adds 4), and below protobuf's own limit of 100 nested messages, so a request
# accepted as JSON also decodes as protobuf at ingest.
MAX_JSON_DEPTH = 100
# A JSON integer for an OTLP field fits in 64 bits: at most 20 digits and a sign.
MAX_INT_CHARS = 21
# Content-Encoding → zlib window bits; deflate is sniffed (zlib-wrapped or raw, as clients vary).
ENCODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 0}
INFLATE_PIECE = 256 * 1024  # output of one zlib call
M = TypeVar("M", bound=Message)


class BadRequest(ValueError):
    """The body cannot be read as an OTLP request; the message says why."""


class TooLarge(BadRequest):
    """The body, once decompressed, is larger than the configured limit."""


class Inflater:
    """The body as it arrives, inflated chunk by chunk and never past `limit` bytes of output:
    a small compressed body that expands to gigabytes is refused after `limit` bytes, holding
    no more than that. Also bounds an uncompressed body read without a Content-Length."""

    def __init__(self, encoding: str, limit: int) -> None:
        encoding = encoding.strip().lower()
        if encoding in ("", "identity"):
            self._wbits: int | None = None
        elif encoding in ENCODINGS:
            self._wbits = ENCODINGS[encoding]
        else:
            raise BadRequest(f"unsupported Content-Encoding {encoding!r}; "
                             "use gzip, deflate or none")
        self.encoding = encoding or "identity"
        self.limit = limit
        self.received = 0  # bytes on the wire
        self._out = bytearray()
        self._inflate: Any = None  # zlib's Decompress, created at the first byte

    def feed(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.limit:
            raise TooLarge(f"body exceeds the limit of {self.limit} bytes")
        if self._wbits is None:
            self._out += chunk
            return
        data = chunk
        while data:
            if self._inflate is None or self._inflate.eof:
                self._inflate = self._start(data)
            try:
                # a bounded piece at a time, and at most one byte past the limit: enough to
                # know it is too large without holding more than the limit plus one piece
                room = self.limit - len(self._out) + 1
                self._out += self._inflate.decompress(data, min(room, INFLATE_PIECE))
            except zlib.error as exc:
                raise BadRequest(f"body is not valid {self.encoding}: {exc}") from exc
            if len(self._out) > self.limit:
                raise TooLarge(f"body exceeds the limit of {self.limit} bytes once "
                               f"decompressed ({self.encoding})")
            # input held back by the output cap, or the start of the next gzip member
            data = self._inflate.unconsumed_tail or self._inflate.unused_data

    def _start(self, data: bytes) -> Any:
        """A decompressor for the stream that starts with `data`: the first, or the next
        member of a gzip body (gzip allows several; deflate has one stream)."""
        wbits = self._wbits or 0
        if self._inflate is not None and wbits <= 0:
            raise BadRequest(f"body has data after the end of its {self.encoding} stream")
        if wbits == 0:  # deflate: zlib-wrapped (RFC 1950) when the first byte says so, else raw
            wbits = zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS
        return zlib.decompressobj(wbits)

    def body(self) -> bytearray:
        """The whole body, once every chunk is fed; a compressed stream must be complete."""
        if self._inflate is not None and not self._inflate.eof:
            raise BadRequest(f"body is not valid {self.encoding}: the stream is truncated")
        return self._out


def _check_int(text: str) -> int:
    """Python's int() refuses over 4,300 digits with ValueError; no OTLP field needs 22."""
    if len(text) > MAX_INT_CHARS:
        raise BadRequest(f"JSON integer with {len(text.lstrip('-'))} digits is out of range")
    return int(text)


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"body is not valid JSON: {name} is not a JSON value")


def _prepare(node: Any, depth: int = 1) -> Any:
    """Check one level of the JSON tree and go down: bounded depth, no lone surrogates (which
    protobuf's parser can only report as SystemError), and ids from OTLP/JSON's hex to the
    base64 that protobuf's JSON mapping expects for bytes."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            _check_text(key)
            if key in ID_FIELDS and isinstance(value, str):
                try:
                    value = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise BadRequest(f"{key} {value!r} is not hex") from exc
            else:
                value = _prepare(value, depth + 1)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_prepare(v, depth + 1) for v in node]
    if isinstance(node, str):
        _check_text(node)
    return node


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise BadRequest(f"JSON string holds a lone surrogate "
                             f"{text[exc.start:exc.end]!r}") from exc


def _from_json(body: bytes | bytearray, message: type[M]) -> M:
    try:
        text = body.decode()  # strict UTF-8, as OTLP/JSON is (no other JSON encodings)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8: {exc}") from exc
    try:
        tree = json.loads(text, parse_int=_check_int, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the parser's own bound, far deeper than MAX_JSON_DEPTH
        raise BadRequest(f"JSON nests deeper than {MAX_JSON_DEPTH} levels") from exc
    if not isinstance(tree, dict):
        raise BadRequest(f"JSON body must be an object, not {type(tree).__name__}")
    request: M = message()
    try:
        json_format.ParseDict(_prepare(tree), request, ignore_unknown_fields=True,
                              max_recursion_depth=MAX_JSON_DEPTH)
    except json_format.ParseError as exc:
        raise BadRequest(f"JSON is not a valid {message.__name__}: {exc}") from exc
    return request


def media_type(content_type: str) -> str:
    """The body's encoding, PROTOBUF or JSON; anything else is a BadRequest."""
    media = content_type.split(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise BadRequest(f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}")
    return media


def decode(body: bytes | bytearray, content_type: str, message: type[M]) -> M:
    if media_type(content_type) == PROTOBUF:
        request: M = message()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise BadRequest(f"body is not a valid {message.__name__} protobuf: {exc}") from exc
        return request
    return _from_json(body, message)


def encode(message: Message, content_type: str) -> tuple[bytes, str]:
    if content_type.split(";")[0].strip().lower() == JSON:
        return json_format.MessageToJson(message, indent=None).encode(), JSON
    return message.SerializeToString(), PROTOBUF


def status(code: int, text: str, content_type: str) -> tuple[bytes, str]:
    return encode(Status(code=code, message=text), content_type)
