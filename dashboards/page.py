"""The pages around the renderer: the live view's shells (/ui, /ui/review, /ui/login), which
load their scripts from /ui/static, and the static report, one file with the scripts, the
styles and the data inside it (it opens anywhere, with no server and no network)."""

from __future__ import annotations

import html
import json
from importlib.resources import files
from typing import Literal

from watchkeeper.dashboards.snapshot import Snapshot

STATIC = files("watchkeeper.dashboards.static")
# What /ui/static serves: the vendored uPlot (static/vendor.json) and our own files.
ASSETS = {"uPlot.iife.min.js": "text/javascript", "uPlot.min.css": "text/css",
          "watchkeeper.css": "text/css", "render.js": "text/javascript",
          "live.js": "text/javascript", "uPlot.LICENSE": "text/plain"}
LivePage = Literal["boards", "review"]


def asset(name: str) -> bytes:
    if name not in ASSETS:
        raise KeyError(name)
    return (STATIC / name).read_bytes()


def _head(title: str, styles: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<link rel='icon' href='data:,'><title>{html.escape(title)}</title>{styles}"
            "</head>")


def _nav(active: str, logout: bool) -> str:
    links = "".join(f"<a href='{href}' class='{'active' if name == active else ''}'>{text}</a>"
                    for name, href, text in (("boards", "/ui/", "Dashboards"),
                                             ("review", "/ui/review", "Review queue")))
    out = ("<form method='post' action='/ui/logout'><button class='link' type='submit'>"
           "Log out</button></form>" if logout else "")
    return f"<header class='top'><h1>Watchkeeper</h1><nav>{links}</nav>{out}</header>"


def live(page: LivePage, logout: bool) -> str:
    styles = ("<link rel='stylesheet' href='/ui/static/uPlot.min.css'>"
              "<link rel='stylesheet' href='/ui/static/watchkeeper.css'>")
    scripts = "".join(f"<script src='/ui/static/{name}'></script>"
                      for name in ("uPlot.iife.min.js", "render.js", "live.js"))
    return (_head("Watchkeeper", styles) + f"<body data-page='{page}'>{_nav(page, logout)}"
            f"<main><p class='muted'>Loading…</p></main>{scripts}</body></html>\n")


def login(next_path: str, failed: bool) -> str:
    styles = "<link rel='stylesheet' href='/ui/static/watchkeeper.css'>"
    message = "<p class='error'>That token is not the API token.</p>" if failed else ""
    return (_head("Watchkeeper · log in", styles) + "<body><form class='login' method='post' "
            "action='/ui/login'><h2>Watchkeeper</h2><p class='muted'>This agent's API has a "
            "token (api.token). Enter it to open the dashboards and the review queue.</p>"
            f"{message}<label>API token<input type='password' name='token' "
            "autocomplete='current-password' autofocus required></label>"
            f"<input type='hidden' name='next' value='{html.escape(next_path, quote=True)}'>"
            "<button type='submit'>Log in</button></form></body></html>\n")


def _inline_json(value: str) -> str:
    """JSON inside <script>: `<`, `>` and `&` escaped so no text can close the element."""
    return value.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def report(snapshot: Snapshot) -> str:
    styles = "".join(f"<style>{asset(name).decode()}</style>"
                     for name in ("uPlot.min.css", "watchkeeper.css"))
    scripts = "".join(f"<script>{asset(name).decode()}</script>"
                      for name in ("uPlot.iife.min.js", "render.js"))
    data = _inline_json(json.dumps(snapshot.model_dump(mode="json")))
    return (_head("Watchkeeper report", styles) + "<body data-page='report'>"
            "<header class='top'><h1>Watchkeeper report</h1></header><main></main>"
            f"<script type='application/json' id='snapshot'>{data}</script>{scripts}"
            "</body></html>\n")
