"""How a command reaches the store. chDB allows one engine per process, so while an agent
owns the embedded store (DATA_DIR/agent.json names its API) commands go through that API;
otherwise, or with a ClickHouse server URL, they open the store themselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from watchkeeper.agent.config import Settings
from watchkeeper.agent.owner import owner_api
from watchkeeper.agent.store.client import Store


class AccessError(Exception):
    """The owner's API refused the request, or there is no store to open: says why."""


@dataclass(frozen=True)
class OwnerApi:
    """The API of the process that owns the store, with the bearer token to show it."""

    url: str
    token: str | None

    def request(self, method: str, path: str, *, json: Any = None,
                params: dict[str, Any] | None = None, timeout: float = 120) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.request(method, f"{self.url}{path}", json=json, params=params,
                                 headers=headers, timeout=timeout)
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text}
        if response.status_code != 200:
            raise AccessError(body.get("error", response.text) if isinstance(body, dict)
                              else response.text)
        return body


def find_owner(settings: Settings, api: str | None = None,
               token: str | None = None) -> OwnerApi | None:
    """`api` if given, else the live agent that owns the embedded store under data_dir (a
    ClickHouse server has no owner: every process connects to it)."""
    url = api or (None if settings.store.url else owner_api(settings.data_dir))
    if not url:
        return None
    token = token or (settings.api.token.get_secret_value() if settings.api.token else None)
    return OwnerApi(url.rstrip("/"), token)


def open_store(settings: Settings) -> Store:
    """The store itself, for a process that owns it now; an embedded store must exist."""
    if not settings.store.url and not (settings.data_dir / "clickhouse").exists():
        raise AccessError(f"no store under {settings.data_dir}: run `watchkeeper up` first")
    return Store(settings.store_url, settings.store)
