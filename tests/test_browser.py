"""What people see, in a real browser: Debian's headless Chromium, driven through chromedriver
by Selenium, against `watchkeeper up` (the quick start's config, an API token) after the demo.
Every panel of every board draws with data or says "No data"; charts have visible lines; no
panel overlaps another and no short cell wraps; no script error or CSP violation; stored text
that looks like markup stays text; confirm / reject on the review page change the stored
verdict, and a correction typed there comes out of `export --format dpo`. The static report
draws the same way. Screenshots of every page land in WATCHKEEPER_TEST_ARTIFACTS (default
build/test-artifacts)/ui.

Skipped without chromium and chromedriver (apt-get install chromium chromium-driver), unless
WATCHKEEPER_REQUIRE_BROWSER=1 (CI sets it), which makes their absence a failure."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import CLI, Service, genai_request, post
from watchkeeper.dashboards.definitions import build_all

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    if os.environ.get("WATCHKEEPER_REQUIRE_BROWSER") == "1":
        raise RuntimeError("WATCHKEEPER_REQUIRE_BROWSER=1 but chromium or chromedriver is "
                           "missing: apt-get install chromium chromium-driver")
    pytest.skip("no chromium/chromedriver (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only where a browser exists)
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "browser-s3cret"
ARTIFACTS = Path(os.environ.get("WATCHKEEPER_TEST_ARTIFACTS", "build/test-artifacts")) / "ui"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
CONFIG = Path(__file__).resolve().parents[1] / "docs" / "examples" / "embedded.yaml"
HOSTILE = "<img src=x onerror=\"window.pwned=1\"> you stupid idiot, <b>answer</b> me"
CORRECTION = "I am sorry about the trouble with your money. Let me look into it right away."
BOARDS = build_all("watchkeeper")

# Pixels of a series' colour (saturated) on a chart's canvas: grid and axes are grey.
COLOURED_PIXELS = """
const canvas = arguments[0].querySelector('canvas');
const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
let n = 0;
for (let i = 0; i < data.length; i += 4) {
  if (data[i + 3] > 0 && Math.max(data[i], data[i + 1], data[i + 2])
      - Math.min(data[i], data[i + 1], data[i + 2]) > 60) n++;
}
return n;"""
OVERLAPS = """
const rects = [...document.querySelectorAll('article.panel')].map(
  (p) => [p.dataset.panel, p.getBoundingClientRect()]);
const out = [];
for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
  const [a, r] = rects[i], [b, s] = rects[j];
  if (r.left < s.right - 1 && s.left < r.right - 1 && r.top < s.bottom - 1
      && s.top < r.bottom - 1) out.push(a + ' / ' + b);
}
return out;"""
# A cell that is not free text never wraps: its text laid out on more than one line broke.
WRAPPED = """
return [...document.querySelectorAll(
  '.table-wrap td:not(.text), .table-wrap th, .panel h3, .value')].filter((cell) => {
  const range = document.createRange();
  range.selectNodeContents(cell);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size > 1;
}).map((cell) => cell.textContent);"""


SPAN = """
const board = document.querySelector('section.board').dataset;
return (Date.parse(board.end) - Date.parse(board.start)) / 1000;"""


def wk(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **OFFLINE})
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("browser") / "wk"
    up = Service("--config", str(CONFIG), "up", "--data-dir", str(data_dir),
                 "--otlp-http-port", "0", "--otlp-grpc-port", "0", "--api-port", "0",
                 env={"WATCHKEEPER_API__TOKEN": TOKEN, **OFFLINE})
    up.data_dir = data_dir  # type: ignore[attr-defined]
    try:
        wk("demo", "--endpoint", up.otlp_http, "--rounds", "3", "--interval", "2")
        hostile = genai_request({"xss": (HOSTILE, "I will not answer that.")})
        assert post(f"{up.otlp_http}/v1/traces", hostile).is_success
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(300):
            flags = httpx.get(f"{up.api}/api/flags", params={"status": "all", "limit": 500},
                              headers=bearer).json()["flags"]
            if any(HOSTILE[:20] in f["prompt"] for f in flags) and len(flags) >= 20:
                break
            subprocess.run(["sleep", "0.2"], check=True)
        else:
            raise AssertionError("the watchers did not flag the demo's traffic")
        yield up
    finally:
        up.stop()
        print("--- up log", up.log_tail(), sep="\n")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: use what is installed
    driver = webdriver.Chrome(service=DriverService(executable_path=str(DRIVER)),
                              options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def count(agent: Service, table: str, where: str = "1") -> int:
    answer = httpx.post(f"{agent.api}/api/query",
                        json={"sql": f"SELECT count() FROM {table} WHERE {where}"},
                        headers={"Authorization": f"Bearer {TOKEN}"})
    return int(answer.json()["rows"][0][0])


def rendered(driver: WebDriver) -> None:
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.body.dataset.rendered") == "true")


def screenshot(driver: WebDriver, name: str) -> None:
    """The whole page, not only the window (DevTools' captureBeyondViewport)."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000),
                 "scale": 1}})
    (ARTIFACTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


def problems(driver: WebDriver) -> list[str]:
    """Script errors and CSP violations the page logged."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def check_board(driver: WebDriver, board: dict[str, Any], span: float) -> None:
    """`span`: the board's range in seconds; a time axis may widen it to a day's bucket."""
    panels = driver.find_elements(By.CSS_SELECTOR, "article.panel")
    assert [p.get_attribute("data-panel") for p in panels] == [p["title"] for p in
                                                                board["panels"]]
    states = {p.get_attribute("data-panel"): p.get_attribute("data-state") for p in panels}
    assert set(states.values()) <= {"data", "nodata"}, states
    for panel in panels:
        if panel.get_attribute("data-state") == "nodata":
            assert "No data" in panel.text
        elif "timeseries" in str(panel.get_attribute("class")):
            name = panel.get_attribute("data-panel")
            assert driver.execute_script(COLOURED_PIXELS, panel) > 50, f"{name}: no line"
            low, high = map(float, str(panel.find_element(By.CSS_SELECTOR, ".body")
                                       .get_attribute("data-xrange")).split(","))
            assert high - low <= span + 86_400, f"{name}: a time axis of {high - low:.0f} s"
    assert driver.execute_script(OVERLAPS) == []
    assert driver.execute_script(WRAPPED) == []


def test_every_board_draws_its_panels_after_login(agent: Service, browser: WebDriver) -> None:
    browser.get(f"{agent.api}/ui/?refresh=0")
    assert "/ui/login" in browser.current_url
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    rendered(browser)
    with_data = 0
    for name, board in BOARDS.items():
        browser.get(f"{agent.api}/ui/?board={name}&refresh=0")
        rendered(browser)
        check_board(browser, board, float(browser.execute_script(SPAN)))
        with_data += len(browser.find_elements(By.CSS_SELECTOR, "[data-state=data]"))
        screenshot(browser, f"board-{name}")
        if name == "overview":
            calls = browser.find_element(By.CSS_SELECTOR, "[data-panel='LLM calls'] .value")
            assert calls.text == str(count(agent, "samples"))
    assert with_data >= 30  # the demo fills most panels; drift has no runs yet
    assert problems(browser) == []


def test_variables_and_range_narrow_the_panels(agent: Service, browser: WebDriver) -> None:
    browser.get(f"{agent.api}/ui/?board=users&refresh=0")
    rendered(browser)
    for name in ("var-service", "var-environment", "var-model", "var-user"):
        assert browser.find_element(By.NAME, name).get_attribute("value") == "$__all", name
    browser.get(f"{agent.api}/ui/?board=overview&refresh=0&var-service=summariser")
    rendered(browser)
    calls = browser.find_element(By.CSS_SELECTOR, "[data-panel='LLM calls'] .value").text
    assert calls == str(count(agent, "samples", "service = 'summariser'")) != "0"
    service = browser.find_element(By.NAME, "var-service")
    assert service.get_attribute("value") == "summariser"
    browser.get(f"{agent.api}/ui/?board=overview&refresh=0&from=now-3h&to=now-2h")
    rendered(browser)
    assert browser.find_element(By.CSS_SELECTOR, "[data-panel='LLM calls'] .value").text == "0"
    assert browser.find_elements(By.CSS_SELECTOR, "[data-panel='Calls by service'] .nodata")


def test_review_page_changes_the_stored_verdict_and_exports_the_correction(
        agent: Service, browser: WebDriver, tmp_path: Path) -> None:
    browser.get(f"{agent.api}/ui/review?status=open")
    rendered(browser)
    assert browser.execute_script("return window.pwned") is None
    prompts = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "pre.prompt")]
    assert HOSTILE in prompts  # shown as the text it is
    screenshot(browser, "review-open")
    cards = browser.find_elements(By.CSS_SELECTOR, "article.flag")
    rude = next(c for c in cards if "moron" in c.find_element(By.CSS_SELECTOR,
                                                              "pre.completion").text
                and "watcher:profanity" in c.text)
    refusal = next(c for c in cards if "watcher:quality · refusal" in c.text)
    browser.find_element(By.NAME, "reviewer").send_keys("alice@example.com")
    rude.find_element(By.NAME, "correction").send_keys(CORRECTION)
    rude.find_element(By.CSS_SELECTOR, "button.confirm").click()
    refusal.find_element(By.CSS_SELECTOR, "button.reject").click()
    WebDriverWait(browser, 30).until(
        lambda _: (rude.get_attribute("data-status"), refusal.get_attribute("data-status"))
        == ("confirmed", "rejected"))
    assert problems(browser) == []

    bearer = {"Authorization": f"Bearer {TOKEN}"}
    stored = {}
    for status in ("confirmed", "rejected"):
        for view in httpx.get(f"{agent.api}/api/flags", params={"status": status},
                              headers=bearer).json()["flags"]:
            stored[view["flag"]["flag_id"]] = (view["review"]["verdict"],
                                               view["review"]["reviewer"])
    assert stored[rude.get_attribute("data-flag")] == ("confirmed", "alice@example.com")
    assert stored[refusal.get_attribute("data-flag")] == ("rejected", "alice@example.com")

    out = tmp_path / "pairs.jsonl"
    wk("export", "--format", "dpo", "--out", str(out), "--data-dir",
       str(agent.data_dir), "--token", TOKEN)  # type: ignore[attr-defined]
    [pair] = [json.loads(line) for line in out.read_text().splitlines()]
    assert pair["preferred_output"] == [{"role": "assistant", "content": CORRECTION}]
    assert "moron" in pair["non_preferred_output"][0]["content"]

    browser.get(f"{agent.api}/ui/review?status=all")
    rendered(browser)
    screenshot(browser, "review-all")


def test_static_report_draws_like_the_live_view(agent: Service, browser: WebDriver) -> None:
    report = (ARTIFACTS / "report.html").resolve()
    wk("dashboards", "report", "--data-dir", str(agent.data_dir),  # type: ignore[attr-defined]
       "--token", TOKEN, "--hours", "1", "--out", str(report))
    browser.get(report.as_uri())
    rendered(browser)
    sections = browser.find_elements(By.CSS_SELECTOR, "section.board")
    assert [s.get_attribute("data-board") for s in sections] == list(BOARDS)
    for section, board in zip(sections, BOARDS.values(), strict=True):
        titles = [p.get_attribute("data-panel")
                  for p in section.find_elements(By.CSS_SELECTOR, "article.panel")]
        assert titles == [p["title"] for p in board["panels"]]
    states = {p.get_attribute("data-state")
              for p in browser.find_elements(By.CSS_SELECTOR, "article.panel")}
    assert states <= {"data", "nodata"}
    for panel in browser.find_elements(By.CSS_SELECTOR, "article.panel.timeseries"
                                                        "[data-state=data]"):
        assert browser.execute_script(COLOURED_PIXELS, panel) > 50
    assert browser.execute_script(WRAPPED) == []
    assert problems(browser) == []
    screenshot(browser, "report")
