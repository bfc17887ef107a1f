"""The store over ClickHouse's HTTP interface (`http(s)://user:password@host:port`): migrations,
inserts, server-side query parameters, authentication and TLS, through clickhouse-connect's HTTP
client against the real ClickHouse engine behind a minimal HTTP front (tests/clickhouse_http.py:
no ClickHouse server installs here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import clickhouse_connect
import httpx
import lz4.frame
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_http import Running, serve
from test_store import _sample

from helpers import genai_request
from watchkeeper.agent.config import QueryLimits, StoreConfig
from watchkeeper.agent.store import rows
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import TABLES, migrate, migrations
from watchkeeper.agent.store.sandbox import QueryFailed, Sandbox
from watchkeeper.collectors.normalise import NormaliseOptions, native

USER = "watchkeeper"
PASSWORD = "s3cr:t@p/ss%"  # ':', '@', '/' and '%' must be percent-encoded in a URL


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and a server certificate it signed for 127.0.0.1 (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=Watchkeeper test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ):
        subprocess.run(["openssl", *command], cwd=d, check=True, capture_output=True)
    return Certificates(d / "ca.pem", d / "server.pem", d / "server.key")


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory,
               certificates: Certificates) -> Iterator[Running]:
    """One front end process (HTTP and HTTPS ports, one engine) for the module's tests."""
    with serve(tmp_path_factory.mktemp("clickhouse"), user=USER, password=PASSWORD,
               tls=(certificates.cert, certificates.key)) as running:
        yield running


@pytest.fixture
def store(clickhouse: Running) -> Iterator[Store]:
    """A store on a database of its own, reached over HTTP with the user and password in the
    URL."""
    handle = Store(clickhouse.url(),
                   StoreConfig(database=f"wk_{uuid.uuid4().hex[:12]}", retention_days=9))
    yield handle
    handle.close()


def test_migrations_run_over_http_and_are_idempotent(store: Store) -> None:
    db = store.database
    assert migrate(store) == [m.version for m in migrations()]
    assert migrate(store) == []
    versions = store.query(f"SELECT version FROM {db}.schema_migrations FINAL ORDER BY version")
    assert [v[0] for v in versions.rows] == [m.version for m in migrations()]
    tables = {r[0] for r in store.query(f"SHOW TABLES FROM {db}").rows}
    assert set(TABLES) | {"schema_migrations"} <= tables
    ddl = store.query(f"SHOW CREATE TABLE {db}.samples").rows[0][0]
    assert "toIntervalDay(9)" in ddl and "ReplacingMergeTree" in ddl


def test_sample_round_trip_over_http(store: Store) -> None:
    """Ingest's path: a Sample's JSON row (rows.py) inserted as JSONEachRow, read back."""
    migrate(store)
    db = store.database
    text = "Grüße 'quoted' \\ back\\slash, tab\t, newline\n, emoji 🙂"
    a, b = _sample("a" * 16, text), _sample("b" * 16)
    batch = rows.json_rows([a, b])
    store.insert_json("samples", batch)
    store.insert_json("samples", batch)  # a replay: ReplacingMergeTree folds the copies
    store.insert_json("samples", rows.json_rows([_sample("a" * 16, "again")]))
    assert store.query(f"SELECT count() FROM {db}.samples FINAL").rows == [(2,)]
    final = store.query("SELECT sample_id, span_id, ts, prompt_text, input_messages, "
                        f"finish_reasons, attributes FROM {db}.samples FINAL ORDER BY span_id")
    assert final.columns[:2] == ["sample_id", "span_id"]
    assert [r[:2] for r in final.rows] == [(a.sample_id, "a" * 16), (b.sample_id, "b" * 16)]
    assert final.rows[0][3] == "again"  # the newest copy wins
    assert final.rows[1][2].replace(tzinfo=UTC) == b.ts
    hi = {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
    assert json.loads(final.rows[1][4]) == [hi]
    assert final.rows[1][5] == ["stop"] and final.rows[1][6] == {"k": "v"}
    c = _sample("c" * 16, text)
    store.insert_json("samples", rows.json_rows([c]))
    stored = store.query(f"SELECT prompt_text, input_messages FROM {db}.samples "
                         "WHERE span_id = {s:String}", {"s": c.span_id}).rows
    assert stored[0][0] == text
    assert json.loads(stored[0][1])[0]["parts"][0]["content"] == text


@pytest.mark.skipif(not native.AVAILABLE, reason="watchkeeper-native is not installed")
def test_compiled_rows_over_http_equal_json_rows(store: Store) -> None:
    """The compiled path's RowBinary rows, inserted over HTTP, read back as the same row its
    JSON line gives."""
    migrate(store)
    db = store.database
    [decoded] = native.decode_traces([genai_request(
        {"m1": ("Grüße \\ 'q' \t 🙂", "ok"), "m2": ("hi", "")}, system="be brief")],
        NormaliseOptions())
    assert decoded is not None and len(decoded.samples) == 2
    store.insert_row_binary("samples", native.ROW_BINARY_COLUMNS,
                            [p.row_binary for p in decoded.samples])
    store.command(f"CREATE TABLE {db}.from_json AS {db}.samples")
    store.insert_json("from_json", [p.line for p in decoded.samples])
    columns = ", ".join(native.ROW_BINARY_COLUMNS)
    binary, json_rows = (store.query(f"SELECT {columns} FROM {db}.{table} ORDER BY span_id").rows
                         for table in ("samples", "from_json"))
    assert binary == json_rows and len(binary) == 2


def test_parameters_are_bound_by_the_server(store: Store) -> None:
    migrate(store)
    sample = _sample("d" * 16)
    store.insert_json("samples", rows.json_rows([sample]))
    # user SQL: unqualified table names resolve in the configured database (`database` param)
    sandbox = Sandbox(store, QueryLimits(max_result_rows=10))
    result = sandbox.run(
        "SELECT span_id FROM samples WHERE service = {s:String} AND sample_id = {id:UUID} "
        "AND ts <= {t:DateTime64(6, 'UTC')} AND has({f:Array(String)}, 'stop')",
        {"s": "svc", "id": sample.sample_id, "t": sample.ts, "f": ["stop", "length"]})
    assert result.rows == [("d" * 16,)]
    tricky = "it's \\ a 'test'\t\n; DROP TABLE samples -- {x:String}"
    assert store.query("SELECT {v:String} AS v", {"v": tricky}).rows == [(tricky,)]
    long = tricky * 200  # over clickhouse-connect's URL limit: sent as a multipart form
    assert store.query("SELECT {v:String} = {w:String}", {"v": long, "w": long}).rows == [(1,)]
    assert len(sandbox.run("SELECT number FROM system.numbers LIMIT 50").rows) == 10
    with pytest.raises(QueryFailed, match="UNKNOWN_TABLE"):
        sandbox.run("SELECT * FROM no_such_table")
    with pytest.raises(QueryFailed, match="READONLY"):  # readonly goes with every request
        sandbox.run("SELECT 1 FROM samples SETTINGS max_result_rows = 0")
    sandbox.close()


def test_credentials_from_config_and_a_wrong_password_rejected(clickhouse: Running) -> None:
    plain = f"http://127.0.0.1:{clickhouse.http_port}"
    config = StoreConfig(username=USER, password=PASSWORD)
    with_config = Store(plain, config)
    assert with_config.query("SELECT currentUser() != ''").rows == [(1,)]
    with_config.close()
    for url, config in [(clickhouse.url(password="wrong"), StoreConfig()),
                        (plain, StoreConfig(username=USER,
                                            password="wrong"))]:
        with pytest.raises(DatabaseError, match=r"Authentication failed.*AUTHENTICATION_FAILED") \
                as error:
            Store(url, config)
        assert error.value.code == 516


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")
def test_https_verifies_the_server_against_ca_cert(clickhouse: Running,
                                                    certificates: Certificates) -> None:
    url = clickhouse.url(tls=True)
    verified = Store(url, StoreConfig(verify_tls=True, ca_cert=certificates.ca))
    assert verified.query("SELECT {n:UInt8} + 1", {"n": 1}).rows == [(2,)]
    verified.close()
    with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        Store(url, StoreConfig(verify_tls=True))  # the test CA is not a system CA
    unverified = Store(url, StoreConfig(verify_tls=False))
    assert unverified.query("SELECT 1").rows == [(1,)]
    unverified.close()


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_front_end_compressed_inserts_and_results(clickhouse: Running,
                                                  compress: str | bool) -> None:
    """clickhouse-connect's own compression choices, both ways (the store uses the default,
    lz4)."""
    client = clickhouse_connect.get_client(host="127.0.0.1", port=clickhouse.http_port,
                                           username=USER, password=PASSWORD, compress=compress)
    table = f"default.c_{uuid.uuid4().hex[:8]}"
    client.command(f"CREATE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
    data = [[i, f"row {i} " * 20] for i in range(3000)]
    assert client.insert(table, data, column_names=["n", "s"]).written_rows == 3000
    assert client.query(f"SELECT n, s FROM {table} ORDER BY n").result_rows == \
        [tuple(r) for r in data]
    client.close()


def test_front_end_answers_like_clickhouse(clickhouse: Running) -> None:
    base = f"http://127.0.0.1:{clickhouse.http_port}/"
    auth = (USER, PASSWORD)
    assert httpx.get(base + "ping").text == "Ok.\n"
    missing = httpx.post(base, content="SELECT * FROM nope", auth=auth)
    assert missing.status_code == 404 and missing.headers["X-ClickHouse-Exception-Code"] == "60"
    assert missing.text.startswith("Code: 60. DB::Exception: ")
    assert "(UNKNOWN_TABLE) (version " in missing.text
    compressed = httpx.post(base, content="SELECT 'x' FORMAT TSV", auth=auth,
                            headers={"Accept-Encoding": "lz4"})
    assert compressed.headers["Content-Encoding"] == "lz4"
    assert lz4.frame.decompress(compressed.content) == b"x\n"
    denied = httpx.post(base, content="SELECT 1", auth=(USER, "nope"))
    assert denied.status_code == 403 and denied.headers["X-ClickHouse-Exception-Code"] == "516"
    table = f"default.d_{uuid.uuid4().hex[:8]}"
    assert httpx.post(base, params={"query": f"CREATE TABLE {table} (n UInt8) ENGINE = Memory"},
                      auth=auth).status_code == 200
    inserted = httpx.post(base, content=zlib.compress(f"INSERT INTO {table} FORMAT TSV\n1\n2\n"
                                                      .encode()),
                          headers={"Content-Encoding": "deflate"}, auth=auth)
    assert json.loads(inserted.headers["X-ClickHouse-Summary"])["written_rows"] == "2"
    total = httpx.get(base, params={"query": f"SELECT sum(n) FROM {table}", "user": USER,
                                    "password": PASSWORD})
    assert (total.text, total.headers["X-ClickHouse-Format"]) == ("3\n", "TabSeparated")
