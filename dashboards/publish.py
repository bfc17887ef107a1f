"""Pushes the dashboards to a running Grafana over its HTTP API (grafana-client), into one
folder, overwriting earlier versions: for teams that manage Grafana by API rather than by
provisioning files."""

from __future__ import annotations

from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError

from watchkeeper.dashboards.definitions import build_all
from watchkeeper.dashboards.provisioning import FOLDER

FOLDER_UID = "watchkeeper"


def _ensure_folder(api: GrafanaApi) -> str:
    try:
        return str(api.folder.get_folder(FOLDER_UID)["uid"])  # type: ignore[no-untyped-call]
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    created = api.folder.create_folder(FOLDER, uid=FOLDER_UID)  # type: ignore[no-untyped-call]
    return str(created["uid"])


def publish(url: str, token: str, database: str) -> list[dict[str, Any]]:
    """Returns Grafana's answer per dashboard (uid, url, version)."""
    api = GrafanaApi.from_url(url, credential=token, timeout=30.0)
    folder = _ensure_folder(api)
    answers = []
    for board in build_all(database).values():
        answers.append(api.dashboard.update_dashboard({
            "dashboard": board, "folderUid": folder, "overwrite": True,
            "message": "provisioned by watchkeeper dashboards push"}))
    return answers
