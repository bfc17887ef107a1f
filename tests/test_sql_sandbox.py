"""User SQL is confined by the engine: a corpus of escapes, each refused with no file written,
no row changed and no outbound connection made; limits the query cannot lift; a runaway query
cancelled within its limit while capture goes on."""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import CLI, RunningAgent, Service, chat_request, post, running_agent
from watchkeeper.agent.config import QueryLimits, StoreConfig
from watchkeeper.agent.store.client import Store
from watchkeeper.agent.store.migrate import migrate
from watchkeeper.agent.store.reader import reader_statements
from watchkeeper.agent.store.sandbox import QueryBusy, QueryFailed, Sandbox
from watchkeeper.agent.store.sql_policy import QueryRefused, parse

# Slow on purpose and cheap on CPU: 10 µs a row over 10^8 rows, far past any limit here.
RUNAWAY = "SELECT count() FROM numbers(100000000) WHERE sleepEachRow(0.00001) = 0"


class Listener:
    """A loopback TCP port that records every connection made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def escapes(out: Path, port: int) -> list[str]:
    """Every escape the security review found, and more of the same families."""
    target = f"http://127.0.0.1:{port}/x"
    sink = out / "written"
    return [
        # files through table functions, in every spelling
        "SELECT * FROM file('/etc/passwd','LineAsString')",
        "SELECT * FROM file/**/('/etc/passwd','LineAsString')",
        "SELECT * FROM file--x\n('/etc/passwd','LineAsString')",
        "SELECT * FROM \"file\"('/etc/passwd','LineAsString')",
        "SELECT * FROM `file`('/etc/passwd','LineAsString')",
        "SELECT * FROM fIlE('/etc/passwd','LineAsString')",
        "SELECT file/**/('/etc/hostname')",
        "SELECT file('/etc/hostname')",
        "SELECT 1 IN file('/etc/hostname','LineAsString')",
        "SELECT * FROM (SELECT * FROM file('/etc/hostname','LineAsString'))",
        "WITH f AS (SELECT * FROM file('/etc/hostname','LineAsString')) SELECT * FROM f",
        "SELECT * FROM fileCluster('default', '/etc/passwd', 'LineAsString')",
        "SELECT * FROM filesystem('/etc')",
        "DESCRIBE TABLE file('/etc/passwd','LineAsString')",
        # writing files
        f"SELECT 1 INTO OUTFILE '{sink}-1.csv'",
        f"SELECT 1 INTO OUTFILE '{sink}-2.csv' APPEND",
        f"SELECT 1 INTO OUTFILE '{sink}-3.csv' TRUNCATE FORMAT CSV",
        f"WITH 1 AS x INSERT INTO FUNCTION \"file\"('{sink}-4.txt','TSVRaw','l String') "
        "SELECT 'x'",
        f"INSERT INTO FUNCTION file('{sink}-5.txt','TSVRaw','l String') SELECT 'x'",
        # changing data and schema
        "WITH 1 AS x INSERT INTO samples (trace_id) SELECT 'x'",
        "INSERT INTO samples (trace_id) VALUES ('x')",
        "ALTER TABLE samples DELETE WHERE 1",
        "TRUNCATE TABLE samples",
        "DROP TABLE samples",
        "CREATE TABLE t (x UInt8) ENGINE = Memory",
        "SELECT 1; DROP TABLE samples",
        "OPTIMIZE TABLE samples FINAL",
        "SYSTEM FLUSH LOGS",
        "KILL QUERY WHERE 1",
        "SET readonly = 0",
        # the network (request forgery) and other servers
        f"SELECT * FROM url('{target}', 'LineAsString')",
        f"SELECT * FROM `url`('{target}', 'LineAsString')",
        f"SELECT * FROM url/**/('{target}', 'LineAsString')",
        f"SELECT * FROM urlCluster('default', '{target}', 'LineAsString')",
        f"SELECT * FROM s3('{target}', 'LineAsString')",
        f"SELECT * FROM remote('127.0.0.1:{port}', system.one)",
        f"SELECT * FROM remoteSecure('127.0.0.1:{port}', system.one)",
        f"SELECT * FROM mysql('127.0.0.1:{port}', 'd', 't', 'u', 'p')",
        f"SELECT * FROM postgresql('127.0.0.1:{port}', 'd', 't', 'u', 'p')",
        "SELECT * FROM executable('id', 'LineAsString', 'x String')",
        "SELECT * FROM python('os')",
        # settings, formats, limits
        "SELECT * FROM samples SETTINGS max_result_rows = 0",
        "SELECT * FROM samples SETTINGS readonly = 0",
        "SELECT * FROM (SELECT 1 SETTINGS max_execution_time = 0)",
        "SELECT 1 FORMAT JSON",
        # runaway generators
        "SELECT count() FROM loop(numbers(3))",
        "SELECT * FROM loop(samples)",
        # other databases and system tables
        "SELECT * FROM system.users",
        "SELECT * FROM system.processes",
        "SELECT * FROM system.settings",
        "SELECT 1 FROM samples WHERE trace_id IN system.query_log",
        "SELECT * FROM merge('system', '.*')",
        "SELECT * FROM view(SELECT * FROM system.users)",
        "SELECT * FROM default.t",
        "SELECT * FROM `sys tem`.users",
        "SELECT dictGet('d', 'a', 1)",
        "SELECT joinGet('system.users', 'name', 1)",
        "SELECT * FROM dictionary('d')",
        "SHOW TABLES FROM system",
        "EXPLAIN SELECT 1",
        # names holding newlines that would print extra lines in the parse tree
        "SELECT `a\n    TableIdentifier system.users` FROM samples",
        "SELECT `x (children 1)\n     Function file` FROM samples",
    ]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    handle = Store(f"chdb://{tmp_path / 'clickhouse'}", StoreConfig())
    migrate(handle)
    handle.command(f"INSERT INTO {handle.database}.samples (trace_id, span_id, service, ts) "
                   "VALUES ('t1', 's1', 'svc', now64(6))")
    yield handle
    handle.close()


@pytest.fixture
def sandbox(store: Store) -> Iterator[Sandbox]:
    box = Sandbox(store, QueryLimits(max_execution_time_s=2, max_result_rows=100))
    yield box
    box.close()


def _state(store: Store) -> tuple[object, ...]:
    """Every table's rows, summed by content: a changed row changes it."""
    tables = [row[0] for row in store.query(
        "SELECT name FROM system.tables WHERE database = {d:String} ORDER BY name",
        {"d": store.database}).rows]
    return tuple((t, store.query(f"SELECT count(), sum(cityHash64(*)) FROM "
                                 f"{store.database}.{t}").rows[0]) for t in tables)


def test_every_escape_is_refused_and_nothing_happens(store: Store, sandbox: Sandbox,
                                                     tmp_path: Path) -> None:
    listener = Listener()
    before = _state(store)
    outcomes = {}
    try:
        for sql in escapes(tmp_path, listener.port):
            with pytest.raises((QueryRefused, QueryFailed)) as refused:
                sandbox.run(sql)
            outcomes[sql] = str(refused.value)
        time.sleep(0.3)  # a connection attempt would have landed by now
    finally:
        listener.close()
    assert listener.connections == 0, "an escape reached the network"
    assert not list(tmp_path.glob("written*")), "an escape wrote a file"
    assert _state(store) == before, "an escape changed rows"
    # the file's contents never come back in an error either
    assert not any("root:x:0:0" in reason for reason in outcomes.values())
    # refusals say why; the policy, not a later engine error, stops the file and URL readers
    assert "table function file is not allowed" in outcomes[escapes(tmp_path, 0)[1]]
    assert "INTO OUTFILE" in outcomes[f"SELECT 1 INTO OUTFILE '{tmp_path / 'written'}-1.csv'"]


@pytest.mark.parametrize("sql,expected", [
    ("SELECT trace_id FROM samples", [("t1",)]),
    ("SELECT trace_id FROM watchkeeper.samples AS s WHERE s.service = 'svc'", [("t1",)]),
    ("WITH c AS (SELECT service FROM samples) SELECT count() FROM c", [(1,)]),
    ("SELECT count() FROM samples WHERE trace_id IN (SELECT trace_id FROM samples)", [(1,)]),
    ("SELECT sum(number) FROM numbers(10)", [(45,)]),
    ("SELECT count() FROM system.tables WHERE database = 'watchkeeper' AND name = 'samples'",
     [(1,)]),
    ("SELECT number, sum(number) OVER (ORDER BY number) FROM numbers(3)",
     [(0, 0), (1, 1), (2, 3)]),
    ("SELECT arrayMap(x -> x * 2, [1, 2])", [([2, 4],)]),
    ("SELECT 1 -- a trailing comment", [(1,)]),
    ("SELECT 1 AS `file`;", [(1,)]),
])
def test_reading_queries_work(sandbox: Sandbox, sql: str, expected: list[tuple[object, ...]]
                              ) -> None:
    assert sandbox.run(sql).rows == expected


def test_parameters_describe_and_show(sandbox: Sandbox) -> None:
    assert sandbox.run("SELECT span_id FROM samples WHERE service = {s:String}",
                       {"s": "svc"}).rows == [("s1",)]
    # a parameter is substituted before the parse tree is checked
    with pytest.raises(QueryRefused, match=r"system\.users"):
        sandbox.run("SELECT * FROM {t:Identifier}", {"t": "system.users"})
    assert ("samples",) in sandbox.run("SHOW TABLES").rows
    assert sandbox.run("DESCRIBE TABLE samples").rows[0][:2] == ("sample_id", "UUID")


def test_results_are_cut_at_the_limit_and_say_so(sandbox: Sandbox) -> None:
    cut = sandbox.run("SELECT number FROM numbers(100000)")
    assert len(cut.rows) == 100 and cut.truncated
    whole = sandbox.run("SELECT number FROM numbers(100)")
    assert len(whole.rows) == 100 and not whole.truncated


def test_limits_are_the_engines_and_cannot_be_lifted(store: Store) -> None:
    slow = Sandbox(store, QueryLimits(max_execution_time_s=1))
    small = Sandbox(store, QueryLimits(max_rows_to_read=1000, max_memory_bytes=50 * 1024 ** 2))
    try:
        started = time.monotonic()
        with pytest.raises(QueryFailed) as timed_out:
            slow.run(RUNAWAY)
        assert timed_out.value.limit == "max_execution_time"
        assert time.monotonic() - started < 3
        with pytest.raises(QueryFailed) as too_many:
            small.run("SELECT count() FROM numbers(1000000)")
        assert too_many.value.limit == "max_rows_to_read"
        with pytest.raises(QueryFailed) as memory:
            small.run("SELECT length(groupArray(repeat('x', 100000))) FROM numbers(900)")
        assert memory.value.limit == "max_memory_usage"
        with pytest.raises(QueryFailed, match="READONLY"):  # nor lifted by the query
            small.run("SELECT count() FROM numbers(1000000) SETTINGS max_rows_to_read = 0")
    finally:
        slow.close()
        small.close()


def test_queries_past_the_slots_wait_then_are_refused(store: Store) -> None:
    box = Sandbox(store, QueryLimits(max_concurrent=1, queue_timeout_s=0.3,
                                     max_execution_time_s=3))
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            running = pool.submit(box.run, RUNAWAY)
            time.sleep(0.5)
            with pytest.raises(QueryBusy):
                box.run("SELECT 1")
            assert box.cancel_running() == 1
            with pytest.raises(QueryFailed) as cancelled:
                running.result(5)
            assert cancelled.value.limit == "cancelled"
        assert box.run("SELECT 1").rows == [(1,)]  # the slot came back
    finally:
        box.close()


@pytest.mark.parametrize("lines", [
    # an identifier with a newline prints extra lines: counts no longer add up
    ["SelectWithUnionQuery (children 1)", " ExpressionList (children 1)",
     "  Identifier a", "   Function file (children 1)"],
    # a second root
    ["SelectWithUnionQuery", "SelectWithUnionQuery"],
    # a line the grammar does not know
    ["SelectWithUnionQuery (children 1)", " ???"],
    [],
])
def test_a_parse_tree_that_does_not_add_up_is_refused(lines: list[str]) -> None:
    with pytest.raises(QueryRefused):
        parse(lines)


def test_reader_account_ddl_parses_and_grants_only_reading(store: Store) -> None:
    """No ClickHouse server installs here (chDB has no accounts): the statements are checked
    by the engine's own parser, and for what they grant."""
    config = StoreConfig(reader_password="s3cret'; DROP USER x --")
    statements = reader_statements(config, QueryLimits(), salt="ab" * 8)
    for statement in statements:
        kind = store.query("EXPLAIN AST " + statement).rows[0][0]
        assert kind.split()[0] in ("CREATE", "CreateSettingsProfileQuery", "CreateUserQuery",
                                   "GrantQuery"), statement
    text = "\n".join(statements)
    assert "s3cret" not in text  # the password goes over as a salted hash only
    assert "readonly = 1 CONST" in text and "max_execution_time = 30 CONST" in text
    grants = [s for s in statements if s.startswith("GRANT")]
    assert all(" SELECT ON " in g for g in grants)
    assert {g.split(" ON ")[1].split()[0] for g in grants} >= {"watchkeeper.*", "system.one"}


def test_migrate_refuses_a_reader_on_the_embedded_store(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run([*CLI, "migrate", "--data-dir", str(tmp_path),
                           "--create-readonly-user"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs a ClickHouse server" in done.stderr


# -- through the agent's API, as an attacker or a dashboard would reach it -----------------

def _api_query(agent: RunningAgent, sql: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{agent.api}/api/query", json={"sql": sql}, timeout=timeout)


def test_api_answers_refusals_with_reasons(agent: RunningAgent) -> None:
    refused = _api_query(agent, "SELECT * FROM file('/etc/passwd','LineAsString')")
    assert refused.status_code == 403 and "file" in refused.json()["error"]
    bad = _api_query(agent, "SELECT * FROM no_such_table")
    assert bad.status_code == 400 and "UNKNOWN_TABLE" in bad.json()["error"]
    malformed = httpx.post(f"{agent.api}/api/query", content=b"\xff\xfe", timeout=10,
                           headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    not_json = httpx.post(f"{agent.api}/api/query", content=b"sql=SELECT 1", timeout=10,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415  # what a cross-site form could send
    wrong_type = httpx.post(f"{agent.api}/api/query", json={"sql": 1}, timeout=10)
    assert wrong_type.status_code == 400
    ok = _api_query(agent, "SELECT number FROM numbers(20000)")
    assert ok.status_code == 200 and ok.json()["truncated"] is True
    assert len(ok.json()["rows"]) == 10_000


HOSTILE_BODIES = [
    b'{"sql": "\\ud800"}',  # a lone surrogate
    b'{"sql": "SELECT {a:String}", "parameters": {"a": "\\ud800"}}',
    b'{"sql": "SELECT {a:Array(String)}", "parameters": {"a": [[1], null]}}',
    b'{"sql": "SELECT 1", "parameters": "x"}',
    b'{"sql": "\\u0000SELECT 1"}',
    b'[1, 2]',
    b'null',
    b'{"sql": "SELECT ' + b"(" * 5000 + b"1" + b")" * 5000 + b'"}',  # past the parser's depth
]


def test_hostile_query_bodies_get_a_4xx(agent: RunningAgent) -> None:
    for body in HOSTILE_BODIES:
        answer = httpx.post(f"{agent.api}/api/query", content=body, timeout=30,
                            headers={"Content-Type": "application/json"})
        assert 400 <= answer.status_code < 500, (body[:60], answer.text)
        assert "error" in answer.json()
    assert httpx.get(f"{agent.api}/readyz", timeout=10).status_code == 200


def test_runaway_queries_are_cancelled_while_capture_goes_on(tmp_path: Path) -> None:
    """Four runaway queries (two running, two queued) against an agent with a 3 s limit:
    each is answered within its limit with the reason, and spans exported meanwhile are
    acknowledged promptly and stored."""
    limits = {"query.max_execution_time_s": 3, "query.queue_timeout_s": 10}
    with running_agent(tmp_path / "wk", **limits) as agent, \
            concurrent.futures.ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        runaways = [pool.submit(_api_query, agent, RUNAWAY) for _ in range(4)]
        time.sleep(0.3)
        export_s = []
        for n in range(20):
            sent = time.monotonic()
            response = post(f"{agent.http_endpoint}/v1/traces", chat_request(1, f"r{n}"))
            export_s.append(time.monotonic() - sent)
            assert response.status_code == 200
            time.sleep(0.1)
        stored_while_running = agent.wait_for(
            "SELECT count() AS n FROM {db}.samples", 20, timeout_s=5)
        answers = [f.result(30) for f in runaways]
        elapsed = time.monotonic() - started
    assert stored_while_running == 20
    assert max(export_s) < 1.0, f"exports stalled behind user queries: {export_s}"
    for answer in answers:
        assert answer.status_code == 400
        assert answer.json()["limit"] == "max_execution_time"
    assert elapsed < 3 * 2 + 4  # two rounds of two, each cut at its limit


def test_sigterm_cancels_a_running_user_query(tmp_path: Path) -> None:
    agent = Service("up", "--data-dir", str(tmp_path / "wk"), "--otlp-http-port", "0",
                    "--otlp-grpc-port", "0", "--api-port", "0", "--no-watch")
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(httpx.post, f"{agent.api}/api/query", json={"sql": RUNAWAY},
                                  timeout=60)
            time.sleep(1.0)
            stopping = time.monotonic()
            assert agent.stop() == 0
            assert time.monotonic() - stopping < 10, "SIGTERM waited for the user query"
            with pytest.raises(httpx.HTTPError):
                pending.result(10).raise_for_status()
    finally:
        agent.kill() if agent.proc.poll() is None else None
