"""The live view's server side on a running agent: the login form and its session cookie, the
board data the pages draw (/api/dashboards), and the API's defences against a browser turned
on it (cross-site requests, DNS rebinding, open redirects). What people see is driven in a
real browser by tests/test_browser.py."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from helpers import RunningAgent, Service, genai_request, post, running_agent
from watchkeeper.agent.auth import Sessions
from watchkeeper.dashboards import page
from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.snapshot import RangeError, frame, parse_moment, step_for

TOKEN = "ui-s3cret-token"
CALLS = {"a": ("What is 2+2?", "4."), "b": ("Summarise this.", "A summary.")}


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    with running_agent(tmp_path_factory.mktemp("ui") / "wk", **{"api.token": TOKEN}) as agent:
        assert post(f"{agent.http_endpoint}/v1/traces", genai_request(CALLS)).is_success
        assert agent.wait_for("SELECT count() AS n FROM {db}.samples", 2) == 2
        yield agent


def logged_in(agent: RunningAgent) -> httpx.Client:
    client = httpx.Client(base_url=agent.api, timeout=30)
    answer = client.post("/ui/login", data={"token": TOKEN, "next": "/ui/review"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/review"
    return client


def test_pages_ask_for_the_token_and_the_cookie_holds_a_session_not_the_token(
        agent: RunningAgent) -> None:
    anonymous = httpx.Client(base_url=agent.api, timeout=30)
    to_login = anonymous.get("/ui/review?status=all&watcher=toxicity")
    assert to_login.status_code == 302  # the page's whole query survives the login
    login_url = urlsplit(to_login.headers["location"])
    assert login_url.path == "/ui/login"
    assert parse_qs(login_url.query) == {"next": ["/ui/review?status=all&watcher=toxicity"]}
    back = anonymous.get(to_login.headers["location"])
    assert "value='/ui/review?status=all&amp;watcher=toxicity'" in back.text
    again = httpx.post(f"{agent.api}/ui/login", data={
        "token": TOKEN, "next": "/ui/review?status=all&watcher=toxicity"})
    assert again.headers["location"] == "/ui/review?status=all&watcher=toxicity"
    form = anonymous.get("/ui/login", params={"next": "/ui/review"})
    assert form.status_code == 200 and "name='token'" in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]
    assert anonymous.get("/api/dashboards").status_code == 401

    started = time.monotonic()
    wrong = anonymous.post("/ui/login", data={"token": "guess", "next": "/ui/"})
    assert wrong.status_code == 401 and "not the API token" in wrong.text
    assert time.monotonic() - started >= 1.0  # a guess costs a second
    assert "set-cookie" not in wrong.headers

    client = logged_in(agent)
    cookie = client.cookies[Sessions.COOKIE]
    assert TOKEN not in cookie
    header = client.post("/ui/login", data={"token": TOKEN}).headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Strict" in header
    shell = client.get("/ui/review")
    assert shell.status_code == 200 and "data-page='review'" in shell.text
    assert shell.headers["x-frame-options"] == "DENY"
    assert client.get("/api/dashboards").json()["boards"][0]["name"] == "overview"

    forged = httpx.get(f"{agent.api}/api/dashboards",
                       cookies={Sessions.COOKIE: f"{int(time.time()) + 3600}.{'0' * 64}"})
    expired = Sessions()
    assert not expired.valid(expired.issue(now=time.time() - 2 * expired.ttl_s))
    assert forged.status_code == 401
    for cookie in ("9" * 5000 + ".ab", "a.b.c", "", ".", "12.zz"):  # garbage: 401, never 500
        answer = httpx.get(f"{agent.api}/api/dashboards", cookies={Sessions.COOKIE: cookie})
        assert answer.status_code == 401, cookie[:20]

    out = client.post("/ui/logout")
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    client.cookies.clear()
    assert client.get("/api/dashboards").status_code == 401


def test_after_login_goes_only_to_a_page_of_this_view(agent: RunningAgent) -> None:
    for target in ("https://evil.example/", "//evil.example/ui", "/ui//evil.example",
                   "/api/query"):
        answer = httpx.post(f"{agent.api}/ui/login", data={"token": TOKEN, "next": target})
        assert answer.headers["location"] == "/ui/", target


def test_board_data_over_a_range_with_variables(agent: RunningAgent) -> None:
    client = logged_in(agent)
    fitted = client.get("/api/dashboards/overview").json()
    assert {v["name"]: v["options"] for v in fitted["variables"]}["environment"] == [""]
    panels = {p["title"]: p for p in fitted["panels"]}
    assert len(panels) == len(build_all("watchkeeper")["overview"]["panels"])
    assert panels["LLM calls"]["value"] == 2 and not any(p["error"] for p in panels.values())
    assert panels["Calls by service"]["frame"]["series"]

    now_ms = int(time.time() * 1000)
    earlier = client.get("/api/dashboards/overview",
                         params={"from": now_ms - 7_200_000, "to": now_ms - 3_600_000}).json()
    assert {p["title"]: p for p in earlier["panels"]}["LLM calls"]["value"] == 0
    narrowed = client.get("/api/dashboards/overview",
                          params={"from": "now-1h", "var-service": "nobody's-app"}).json()
    assert narrowed["variables"][0]["selected"] == ["nobody's-app"]
    assert {p["title"]: p for p in narrowed["panels"]}["LLM calls"]["value"] == 0

    for params, reason in (({"from": "yesterday"}, "is not a time"),
                           ({"from": "now", "to": "now-1h"}, "before it starts"),
                           ({"from": "now-200d"}, "at most 90 days"),
                           ({"var-nope": "x"}, "no variable nope")):
        bad = client.get("/api/dashboards/overview", params=params)
        assert bad.status_code == 400 and reason in bad.json()["error"], params
    unknown = client.get("/api/dashboards/secrets")
    assert unknown.status_code == 400 and "no dashboard 'secrets'" in unknown.json()["error"]


def test_a_variable_value_is_data_not_sql(agent: RunningAgent) -> None:
    """Values are quoted as Grafana quotes them, and the panels run in the read-only sandbox:
    an injection attempt filters by an odd service name and changes nothing."""
    client = logged_in(agent)
    hostile = "x') OR 1=1 --"
    answer = client.get("/api/dashboards/overview",
                        params={"from": "now-1h", "var-service": hostile})
    assert answer.status_code == 200
    assert {p["title"]: p for p in answer.json()["panels"]}["LLM calls"]["value"] == 0
    assert agent.query("SELECT count() AS n FROM {db}.samples")[0]["n"] == 2


def test_browser_writes_need_json_and_the_pages_own_header(agent: RunningAgent) -> None:
    """A cross-site form or simple request can send neither JSON nor a custom header, and
    SameSite=Strict keeps the cookie off it anyway: a session alone cannot write."""
    client = logged_in(agent)
    body = {"flag_ids": ["00000000-0000-0000-0000-000000000001"], "verdict": "rejected",
            "reviewer": "mallory"}
    as_form = client.post("/api/reviews", content=json.dumps(body),
                          headers={"Content-Type": "text/plain"})
    assert as_form.status_code == 415 and "must be JSON" in as_form.json()["error"]
    no_header = client.post("/api/reviews", json=body)
    assert no_header.status_code == 401
    with_header = client.post("/api/reviews", json=body, headers={"X-Watchkeeper-UI": "1"})
    assert with_header.status_code == 404 and "no such flag" in with_header.json()["error"]
    bearer = httpx.post(f"{agent.api}/api/reviews", json=body,
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 404  # scripts with the token need no header


def test_an_api_without_a_token_answers_only_loopback_host_names(tmp_path: Path) -> None:
    """DNS rebinding: a page from evil.example whose name now resolves to 127.0.0.1 is same-
    origin with the API, but its requests still say Host: evil.example."""
    agent = Service("up", "--no-watch", "--data-dir", str(tmp_path / "wk"),
                    "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0")
    try:
        port = agent.ports["api"]
        rebound = httpx.get(f"{agent.api}/ui/", headers={"Host": f"evil.example:{port}"})
        assert rebound.status_code == 403 and "loopback" in rebound.json()["error"]
        query = httpx.post(f"{agent.api}/api/query", json={"sql": "SELECT 1"},
                           headers={"Host": "evil.example"})
        assert query.status_code == 403
        assert httpx.get(f"{agent.api}/readyz", headers={"Host": "10.0.0.7"}).status_code == 200
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            shell = httpx.get(f"{agent.api}/ui/", headers={"Host": host})
            assert shell.status_code == 200 and "Log out" not in shell.text, host
        assert httpx.get(f"{agent.api}/ui/login").headers["location"] == "/ui/"
    finally:
        assert agent.stop() == 0


def test_static_files_are_the_vendored_ones_and_nothing_else(agent: RunningAgent) -> None:
    vendor = json.loads((Path(page.STATIC) / "vendor.json").read_text())["uplot"]
    for name, digest in vendor["files"].items():
        served = httpx.get(f"{agent.api}/ui/static/{name}")  # no login needed for library code
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == digest, name
    assert (Path(page.STATIC) / "uPlot.LICENSE").read_text().startswith("The MIT License")
    for name in ("vendor.json", "..%2F..%2Fapi.py", "%2e%2e/page.py", "render.js.map"):
        assert httpx.get(f"{agent.api}/ui/static/{name}").status_code == 404, name


def test_series_share_one_time_axis() -> None:
    columns = ["time", "service", "calls", "p95"]
    rows = [["2026-01-01 00:00:00", "a", 1, 10.0], ["2026-01-01 00:01:00", "a", 2, None],
            ["2026-01-01 00:01:00", "b", 5, 7.5]]
    data = frame(columns, rows)
    assert data.times == [1767225600.0, 1767225660.0]
    assert [(s.name, s.values) for s in data.series] == [
        ("a · calls", [1.0, 2.0]), ("a · p95", [10.0, None]), ("b · calls", [None, 5.0]),
        ("b · p95", [None, 7.5])]
    assert frame(columns, []).series == []


def test_ranges_and_steps() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_moment("now-15m", now) == now - timedelta(minutes=15)
    assert parse_moment("1767225600000", now) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(RangeError):
        parse_moment("now-15x", now)
    assert step_for(now - timedelta(minutes=1), now) == 1
    assert step_for(now - timedelta(hours=1), now) == 30
    assert step_for(now - timedelta(days=7), now) == 7200


def test_bars_stack_as_grafana_stacks_them() -> None:
    """"Cost per day by service" is drawn as Grafana draws it: bars, stacked (each series on
    the ones before it), listed top first so every band shows."""
    from watchkeeper.dashboards.snapshot import Frame, Series, stacked

    data = Frame(times=[1.0, 2.0], series=[Series(name="a", values=[1.0, None]),
                                           Series(name="b", values=[2.0, 3.0])])
    assert [(s.name, s.values) for s in stacked(data).series] == [
        ("b", [3.0, 3.0]), ("a", [1.0, 0.0])]
    panel = next(p for p in build_all("watchkeeper")["cost"]["panels"]
                 if p["title"] == "Cost per day by service")
    assert panel["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"
