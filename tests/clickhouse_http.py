"""A stand-in ClickHouse server for tests: the real ClickHouse engine (chDB, in-process) behind a
minimal front end that speaks ClickHouse's HTTP interface, over HTTP and HTTPS.

No ClickHouse server installs where the tests run (no docker engine, no ClickHouse packages
but Debian's 18.16, far too old), so this is the closest real thing: every statement, insert,
query parameter and setting is executed by the ClickHouse engine itself; only the HTTP layer is
ours. It implements the part of https://clickhouse.com/docs/interfaces/http that
clickhouse-connect uses:

- `POST /` (and `GET /`) with the SQL in the `query` URL parameter, the body, or both (the
  body is appended to `query` after a newline, as ClickHouse does); `GET /ping` and a `GET /`
  without a query answer `Ok.`;
- `INSERT ... FORMAT <fmt>` followed by data (Native from clickhouse-connect's `insert`,
  JSONEachRow from `Store.insert_json`), handed to the engine's input format through chDB's
  `send_insert`; other statements run through chDB's `query`;
- `param_<name>` URL (or multipart form) parameters bound server-side by the engine to
  `{name:Type}` placeholders (chDB's `params`, ClickHouse's own escaped-text parsing);
- `database` (`USE`), `default_format`, `query_id`, and every other URL parameter as a setting
  for that request only (applied with `SET`, reset to `DEFAULT` afterwards);
- users: one user and password, given as HTTP basic auth, `X-ClickHouse-User`/`-Key` headers or
  `user`/`password` parameters; anything else is `Code: 516 ... (AUTHENTICATION_FAILED)`
  with HTTP 403, as ClickHouse answers;
- request bodies with `Content-Encoding` lz4, zstd, gzip, deflate (br when brotli is installed);
  responses compressed with the first of those the client accepts (Accept-Encoding) when
  `enable_http_compression` is on (the engine's default, or the URL parameter), as ClickHouse
  does;
- `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`, `-Summary`, `-Server-Display-Name` headers;
  errors as ClickHouse's text (`Code: N. DB::Exception: ... (NAME) (version V)`), with
  `X-ClickHouse-Exception-Code` and ClickHouse's mapping of error codes to HTTP statuses.

Not implemented: sessions (`session_id` is accepted, but each request starts from default
settings and database, so `SET` and temporary tables do not persist), `client_protocol_version`
(no block info in Native output: clickhouse-connect's probe sees that and uses protocol 0, as it
does with chDB directly), progress headers, ClickHouse's own `compress`/`decompress`
block compression, external data (multipart file parts), url-encoded form bodies, readonly for
GET, query cancellation, and streamed responses (each result is buffered, then sent).

One engine per process (chDB's rule): start it as a separate process, with `serve()` from a
test or `python tests/clickhouse_http.py --data DIR --user U [--tls-cert C --tls-key K]`
(password in CLICKHOUSE_HTTP_PASSWORD); it prints `{"http": port, "https": port}` once ready
and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import email.parser
import email.policy
import gzip
import hmac
import json
import os
import re
import selectors
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

PASSWORD_ENV = "CLICKHOUSE_HTTP_PASSWORD"

# URL parameters of the HTTP interface that are not settings.
HTTP_PARAMETERS = frozenset({
    "query", "database", "default_format", "user", "password", "query_id", "quota_key",
    "session_id", "session_timeout", "session_check", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "stacktrace", "compress", "decompress",
})
SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# An INSERT whose data follows its FORMAT clause: what ClickHouse reads as "query, then data".
INSERT_WITH_DATA = re.compile(
    rb"\A\s*(INSERT\s+INTO\s+(?:TABLE\s+)?[\w.`\"]+\s*(?:\([^()]*\))?"
    rb"(?:\s*SETTINGS\s+[^()]*?)?)\s*\bFORMAT\s+(\w+)\b[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
OUTPUT_FORMAT = re.compile(r"\bFORMAT\s+(\w+)(?:\s+SETTINGS\b.*)?\s*;?\s*\Z",
                           re.IGNORECASE | re.DOTALL)
ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?:\s*\(version [^)]*\)+)?\s*\Z")
VERSION_TRAILER = re.compile(r"\s*\(version [^)]*\)+\s*\Z")

# ClickHouse's src/Server/HTTP/exceptionCodeToHTTPStatus.cpp, by error name.
STATUS_BY_NAME = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED",
                     "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"), 403),
    **dict.fromkeys((
        "BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT",
        "CANNOT_PARSE_ESCAPE_SEQUENCE", "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE",
        "CANNOT_PARSE_DATETIME", "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
        "CANNOT_PARSE_IPV4", "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        "CANNOT_PARSE_UUID", "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST",
        "UNKNOWN_TYPE_OF_AST_NODE", "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST",
        "UNEXPECTED_AST_STRUCTURE", "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH",
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"), 400),
    **dict.fromkeys((
        "UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE", "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
        "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"), 404),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

# Response compression the front end can produce, in the client's order of preference.
COMPRESSIONS = ("lz4", "zstd", "gzip", "deflate")


class ClickHouseError(Exception):
    """An error as ClickHouse reports it: code, name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def from_engine(cls, exc: BaseException) -> ClickHouseError:
        """The engine's own error text (`Code: 60. DB::Exception: ... (UNKNOWN_TABLE)`)."""
        text = str(exc)
        start = text.find("Code: ")
        if start < 0:
            return cls(1001, "STD_EXCEPTION", f"std::exception. Message: {text.strip()}")
        text = VERSION_TRAILER.sub("", text[start:].strip())
        code = re.match(r"Code: (\d+)\.\s*(?:DB::Exception:\s*)?", text)
        assert code is not None
        name = ERROR_NAME.search(text)
        message = text[code.end():]
        if name:
            message = message[:message.rfind(f"({name.group(1)})")].rstrip()
        return cls(int(code.group(1)), name.group(1) if name else "UNKNOWN_EXCEPTION", message)

    def body(self, version: str) -> bytes:
        return (f"Code: {self.code}. DB::Exception: {self.message} ({self.name}) "
                f"(version {version})\n").encode()

    @property
    def status(self) -> int:
        return STATUS_BY_NAME.get(self.name, 500)


def _zstd() -> Any:
    try:
        from compression import zstd  # Python 3.14+
    except ImportError:
        from backports import zstd  # type: ignore[no-redef]
    return zstd


def decompress(data: bytes, encoding: str) -> bytes:
    """A request body as sent with Content-Encoding (clickhouse-connect sends one lz4 frame per
    block, so frames are read until the body ends)."""
    method = encoding.strip().lower()
    try:
        if method in ("", "identity"):
            return data
        if method == "gzip":
            return gzip.decompress(data)
        if method == "deflate":
            return zlib.decompress(data)
        if method == "zstd":
            return bytes(_zstd().decompress(data))
        if method == "lz4":
            import lz4.frame

            out = []
            while data:
                frame = lz4.frame.LZ4FrameDecompressor()
                out.append(frame.decompress(data))
                if not frame.eof:
                    raise ValueError("truncated lz4 frame")
                data = frame.unused_data
            return b"".join(out)
        if method == "br":
            import brotli

            return bytes(brotli.decompress(data))
    except ImportError as exc:
        raise ClickHouseError(1, "UNSUPPORTED_METHOD", f"{method} is not available: {exc}") \
            from exc
    except (OSError, ValueError, RuntimeError, zlib.error, EOFError) as exc:
        raise ClickHouseError(354, "CANNOT_DECOMPRESS",
                              f"Cannot decompress {method} request body: {exc}") from exc
    raise ClickHouseError(36, "BAD_ARGUMENTS", f"Unknown HTTP Content-Encoding: {encoding}")


def compress(data: bytes, method: str) -> bytes:
    if method == "lz4":
        import lz4.frame

        return bytes(lz4.frame.compress(data))
    if method == "zstd":
        return bytes(_zstd().compress(data))
    if method == "gzip":
        return gzip.compress(data)
    return zlib.compress(data)  # deflate: the zlib format, as ClickHouse sends it


def content_type(fmt: str) -> str:
    lowered = fmt.lower()
    if lowered.startswith(("tabseparated", "tsv")):
        return "text/tab-separated-values; charset=UTF-8"
    if lowered.startswith("csv"):
        return "text/csv; charset=UTF-8; header=absent"
    if lowered.startswith("json"):
        return "application/json; charset=UTF-8"
    if lowered.startswith(("native", "rowbinary", "arrow", "parquet", "orc", "avro")):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Request:
    """One HTTP request, decoded: body (SQL, data or both), URL parameters, credentials."""

    body: bytes
    params: dict[str, str]
    user: str
    password: str
    accept_encoding: str = ""

    @property
    def query_params(self) -> dict[str, str]:
        """`param_<name>` values, for `{name:Type}` placeholders."""
        return {k.removeprefix("param_"): v for k, v in self.params.items()
                if k.startswith("param_")}

    @property
    def settings(self) -> dict[str, str]:
        return {k: v for k, v in self.params.items()
                if not k.startswith("param_") and k not in HTTP_PARAMETERS}

    def check(self) -> None:
        for key in self.settings:
            if not SETTING_NAME.match(key):
                raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{key}'")
        for unsupported in ("compress", "decompress"):
            if self.params.get(unsupported, "0") not in ("0", "false", ""):
                raise ClickHouseError(48, "NOT_IMPLEMENTED",
                                      f"the test front end does not implement '{unsupported}'")


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


class Engine:
    """The chDB connection, used by one request at a time (chDB runs one query at a time)."""

    def __init__(self, data_dir: Path, user: str, password: str) -> None:
        import chdb

        self.user = user
        self.password = password
        self.data_dir = data_dir
        self._conn = chdb.connect(str(data_dir))  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()
        version, timezone, compression = self._conn.query(
            "SELECT version(), timezone(), getSetting('enable_http_compression')",
            "TabSeparated").bytes().decode().split()
        self.version: str = version
        self.timezone: str = timezone
        self.http_compression: str = compression  # the default: 1 in recent versions

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def authenticate(self, request: Request) -> None:
        ok = hmac.compare_digest(request.user.encode(), self.user.encode()) & \
            hmac.compare_digest(request.password.encode(), self.password.encode())
        if not ok:
            raise ClickHouseError(516, "AUTHENTICATION_FAILED",
                                  f"{request.user}: Authentication failed: password is incorrect, "
                                  "or there is no user with such name.")

    def handle(self, request: Request) -> Response:
        query_id = request.params.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Server-Display-Name": "chdb-http-front",
                   "X-ClickHouse-Query-Id": query_id,
                   "X-ClickHouse-Timezone": request.settings.get("session_timezone")
                   or self.timezone}
        try:
            self.authenticate(request)
            body, fmt, summary = self._execute(request)
        except ClickHouseError as error:
            headers.update({"X-ClickHouse-Exception-Code": str(error.code),
                            "Content-Type": "text/plain; charset=UTF-8",
                            "X-ClickHouse-Format": "TabSeparated"})
            return Response(error.status, error.body(self.version), headers)
        headers["X-ClickHouse-Summary"] = json.dumps(summary, separators=(",", ":"))
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
            headers["Content-Type"] = content_type(fmt)
        else:
            headers["Content-Type"] = "text/plain; charset=UTF-8"
        enabled = request.settings.get("enable_http_compression", self.http_compression)
        if body and enabled.lower() in ("1", "true"):
            accepted = [e.split(";")[0].strip().lower()
                        for e in request.accept_encoding.split(",")]
            method = next((e for e in accepted if e in COMPRESSIONS), None)
            if method:
                body = compress(body, method)
                headers["Content-Encoding"] = method
        return Response(200, body, headers)

    def _execute(self, request: Request) -> tuple[bytes, str | None, dict[str, str]]:
        request.check()
        text = request.body
        if "query" in request.params:
            text = request.params["query"].encode() + (b"\n" + text if text else b"")
        if not text.strip():
            raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
        started = time.monotonic_ns()
        fmt: str | None = None
        with self._lock, self._session(request):
            # every request starts from the user's defaults: database, then settings
            self._use(request.params.get("database") or "default")
            try:
                self._set(request.settings)
                insert = INSERT_WITH_DATA.match(text)
                if insert:
                    done = self._insert(insert.group(1).decode(), insert.group(2).decode(),
                                        text[insert.end():])
                    body = b""
                    read, written = (0, 0), (done.rows_written, done.bytes_written)
                else:
                    result, fmt = self._query(text, request)
                    body = result.bytes()
                    read = (result.rows_read(), result.bytes_read())
                    written = (result.rows_written(), result.bytes_written())
            finally:
                self._reset(request.settings)
        summary = {"read_rows": read[0], "read_bytes": read[1], "written_rows": written[0],
                   "written_bytes": written[1], "total_rows_to_read": 0,
                   "result_rows": written[0] if insert else 0,
                   "result_bytes": written[1] if insert else len(body),
                   "elapsed_ns": time.monotonic_ns() - started}
        return body, fmt, {k: str(v) for k, v in summary.items()}

    @contextlib.contextmanager
    def _session(self, request: Request) -> Iterator[None]:
        """A request with `readonly` gets an engine session of its own, as on a server (a
        read-only session cannot reset its settings for the next request)."""
        if "readonly" not in request.settings:
            yield
            return
        import chdb

        shared, self._conn = self._conn, chdb.connect(str(self.data_dir))  # type: ignore[no-untyped-call]
        try:
            yield
        finally:
            self._conn.close()
            self._conn = shared

    def _query(self, text: bytes, request: Request) -> tuple[Any, str]:
        try:
            sql = text.decode()
        except UnicodeDecodeError as exc:
            raise ClickHouseError(62, "SYNTAX_ERROR", f"query is not valid UTF-8: {exc}") from exc
        named = OUTPUT_FORMAT.search(sql)
        fmt = named.group(1) if named else request.params.get("default_format", "TabSeparated")
        try:
            return self._conn.query(sql, fmt, params=request.query_params), fmt
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc

    def _insert(self, statement: str, fmt: str, data: bytes) -> Any:
        try:
            with self._conn.send_insert(statement, fmt) as inserter:
                if data:
                    inserter.append(data)
                return inserter.finish()
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc

    def _run(self, sql: str) -> None:
        try:
            self._conn.query(sql, "TabSeparated")
        except Exception as exc:
            raise ClickHouseError.from_engine(exc) from exc

    def _use(self, database: str) -> None:
        self._run(f"USE `{database.replace('`', '``')}`")

    def _set(self, settings: dict[str, str]) -> None:
        if settings:
            self._run("SET " + ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items()))

    def _reset(self, settings: dict[str, str]) -> None:
        if not settings:
            return
        try:
            self._run("SET " + ", ".join(f"{k} = DEFAULT" for k in settings))
        except ClickHouseError:  # one of them unknown: reset the others one by one
            for key in settings:
                with contextlib.suppress(ClickHouseError):
                    self._run(f"SET {key} = DEFAULT")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FrontServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        engine = self.server.engine
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            if url.path == "/ping" or (url.path == "/" and not url.query and not body):
                self._send(Response(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}))
                return
            if url.path != "/":
                self._send(Response(404, f"There is no handle {url.path}\n".encode(),
                                    {"Content-Type": "text/plain; charset=UTF-8"}))
                return
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            body = decompress(body, self.headers.get("Content-Encoding", ""))
            body = self._form(body, params)
            user, password = self._credentials(params)
            request = Request(body, params, user, password,
                              self.headers.get("Accept-Encoding", ""))
        except ClickHouseError as error:
            self._send(Response(error.status, error.body(engine.version),
                                {"X-ClickHouse-Exception-Code": str(error.code),
                                 "Content-Type": "text/plain; charset=UTF-8"}))
            return
        self._send(engine.handle(request))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _form(self, body: bytes, params: dict[str, str]) -> bytes:
        """A multipart/form-data body (clickhouse-connect's form encoding of long parameters):
        its fields join the URL parameters and the body holds no SQL."""
        ctype = self.headers.get("Content-Type", "")
        if not ctype.lower().startswith("multipart/form-data"):
            return body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                raise ClickHouseError(48, "NOT_IMPLEMENTED",
                                      "external data is not implemented by the test front end")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload.decode()
        return b""

    def _credentials(self, params: dict[str, str]) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:].strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ClickHouseError(516, "AUTHENTICATION_FAILED",
                                      "malformed basic authorization header") from exc
            return user, password
        if "X-ClickHouse-User" in self.headers:
            return self.headers["X-ClickHouse-User"], self.headers.get("X-ClickHouse-Key", "")
        return params.pop("user", "default"), params.pop("password", "")

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Keep-Alive", "timeout=10")
        self.end_headers()
        self.wfile.write(response.body)


class FrontServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, engine: Engine, tls: ssl.SSLContext | None = None) -> None:
        self.engine = engine
        self.tls = tls
        super().__init__(("127.0.0.1", port), Handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake runs in the request's thread (Handler.setup)
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="chDB data directory")
    parser.add_argument("--user", default="default")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (0: any free port)")
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS too, with this certificate")
    parser.add_argument("--tls-key", type=Path)
    args = parser.parse_args(argv)
    engine = Engine(args.data, args.user, os.environ.get(PASSWORD_ENV, ""))
    servers = [FrontServer(args.port, engine)]
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        servers.append(FrontServer(args.tls_port, engine, context))
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ports = [s.server_address[1] for s in servers]
    print(json.dumps({"http": ports[0], "https": ports[1] if len(ports) > 1 else None}),
          flush=True)
    stop.wait()
    for server in servers:
        server.shutdown()
        server.server_close()
    engine.close()


@dataclass
class Running:
    """A front end process and how to reach it."""

    process: subprocess.Popen[bytes]
    http_port: int
    https_port: int | None
    user: str
    password: str

    def url(self, *, tls: bool = False, user: str | None = None,
            password: str | None = None) -> str:
        """`http(s)://user:password@127.0.0.1:port`, user and password percent-encoded."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        port = self.https_port if tls else self.http_port
        return (f"{'https' if tls else 'http'}://{quote(user, safe='')}:{quote(password, safe='')}"
                f"@127.0.0.1:{port}")


@contextlib.contextmanager
def serve(data_dir: Path, *, user: str, password: str, tls: tuple[Path, Path] | None = None,
          timeout_s: float = 30) -> Iterator[Running]:
    """The front end in its own process (its own chDB engine on data_dir), until the block
    ends; its stderr goes to data_dir/front.log."""
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--data", str(data_dir / "ch"),
               "--user", user]
    if tls:
        command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    log = data_dir / "front.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr,
                                   env={**os.environ, PASSWORD_ENV: password})
    try:
        assert process.stdout is not None
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            while not line.endswith(b"\n") and time.monotonic() < deadline:
                if selector.select(timeout=0.1):
                    chunk = os.read(process.stdout.fileno(), 4096)
                    if not chunk:
                        break
                    line += chunk
        if not line.endswith(b"\n"):
            raise RuntimeError(f"ClickHouse HTTP front end did not start (exit code "
                               f"{process.poll()}): {log.read_text()[-2000:]}")
        ports = json.loads(line)
        yield Running(process, ports["http"], ports["https"], user, password)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
