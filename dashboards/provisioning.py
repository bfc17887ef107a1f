"""Files Grafana provisions from: the dashboards as JSON, a dashboard provider, and the
ClickHouse data source. The password never lands in a file: the data source reads it from
Grafana's environment (`$__env{…}`), the way Grafana provisioning expands variables."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from watchkeeper.agent.config import AlertRulesConfig
from watchkeeper.dashboards.alerts import provisioning as alert_rules
from watchkeeper.dashboards.clickhouse import DATASOURCE_UID, PLUGIN
from watchkeeper.dashboards.definitions import build_all

FOLDER = "Watchkeeper"
PASSWORD_ENV = "WATCHKEEPER_CLICKHOUSE_PASSWORD"


def dashboard_json(board: dict[str, object]) -> str:
    return json.dumps(board, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def datasource(url: str, database: str, username: str) -> dict[str, object]:
    """The provisioning entry for a ClickHouse server reached over HTTP(S)."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return {
        "apiVersion": 1,
        "datasources": [{
            "name": "Watchkeeper ClickHouse", "type": PLUGIN, "uid": DATASOURCE_UID,
            "editable": False,
            "jsonData": {"host": parts.hostname or "localhost",
                         "port": parts.port or (8443 if secure else 8123),
                         "protocol": "http", "secure": secure,
                         "defaultDatabase": database, "username": username},
            "secureJsonData": {"password": f"$__env{{{PASSWORD_ENV}}}"},
        }],
    }


def provider(path: str) -> dict[str, object]:
    return {"apiVersion": 1, "providers": [{
        "name": "watchkeeper", "folder": FOLDER, "type": "file", "disableDeletion": False,
        "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": path, "foldersFromFilesStructure": False}}]}


def export(out: Path, *, database: str, clickhouse_url: str, username: str,
           dashboards_path: str = "/var/lib/grafana/dashboards/watchkeeper",
           dashboards_only: bool = False,
           alerts: AlertRulesConfig | None = None) -> list[Path]:
    """Write dashboards/<name>.json, the alert rules (alerting/watchkeeper.yaml, in Grafana's
    provisioning format) and, unless dashboards_only (the Helm chart renders its own),
    provisioning/{dashboards,datasources}/watchkeeper.yaml under `out`; returns the files
    written."""
    written = []
    rules_path = out / ("alerting" if dashboards_only else "provisioning/alerting") / \
        "watchkeeper.yaml"
    rules_path.parent.mkdir(parents=True, exist_ok=True)
    rules = alert_rules(database, alerts or AlertRulesConfig(), FOLDER)
    rules_path.write_text(yaml.safe_dump(rules, sort_keys=False, allow_unicode=True))
    written.append(rules_path)
    for name, board in build_all(database).items():
        path = out / "dashboards" / f"watchkeeper-{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dashboard_json(board))
        written.append(path)
    if dashboards_only:
        return written
    for kind, content in (("dashboards", provider(dashboards_path)),
                          ("datasources", datasource(clickhouse_url, database, username))):
        path = out / "provisioning" / kind / "watchkeeper.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        written.append(path)
    return written
