"""Detector alerts sent straight out, besides the review queue: to an Alertmanager (API v2,
`POST /api/v2/alerts`) and/or a webhook in Alertmanager's webhook format. Each (job, scope,
signal) is one alert: it fires when a run alerts, is sent again on every run while it fires
(Alertmanager forgets alerts that stop being sent), and is resolved by the first run that does
not alert. The webhook gets only the changes (a firing alert once, then its resolution)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from watchkeeper.agent.config import AlertDeliveryConfig

log = logging.getLogger(__name__)
ALERT_NAME = "WatchkeeperDetectorAlert"
# How long Alertmanager keeps a firing alert that is not sent again (a run or two missed).
HOLD = timedelta(hours=2)


class Result(Protocol):
    detector: str
    alert: bool
    p_value: float | None
    threshold: float
    effect_size: float | None
    details: dict[str, Any]


class Outcome(Protocol):
    """A run of one job for one scope (schedule.service.Run)."""

    scope: str
    result: Result

    @property
    def job_name(self) -> str: ...


class AlertNotifier:
    def __init__(self, config: AlertDeliveryConfig) -> None:
        self.config = config
        headers = ({"Authorization": f"Bearer {config.token.get_secret_value()}"}
                   if config.token else {})
        self._client = httpx.Client(timeout=config.timeout_s, headers=headers)
        self._firing: dict[str, dict[str, Any]] = {}  # fingerprint -> the alert as sent
        self.sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.config.alertmanager_url or self.config.webhook_url)

    def notify(self, runs: Sequence[Outcome], now: datetime | None = None) -> None:
        """Send what these runs change; a receiver that is down is logged, never raised: the
        runs are stored and flagged whatever happens here."""
        now = now or datetime.now(UTC)
        firing, changed = [], []
        for run in runs:
            alert = _alert(run, now)
            key = alert["fingerprint"]
            if run.result.alert:
                firing.append(alert)
                if key not in self._firing:
                    changed.append(alert)
                    self._firing[key] = alert
            elif key in self._firing:
                resolved = {**self._firing.pop(key), "status": "resolved",
                            "endsAt": _iso(now)}
                firing.append(resolved)
                changed.append(resolved)
        if self.config.alertmanager_url and firing:
            self._post(f"{self.config.alertmanager_url}/api/v2/alerts",
                       [{k: a[k] for k in ("labels", "annotations", "startsAt", "endsAt",
                                           "generatorURL")} for a in firing])
        if self.config.webhook_url and changed:
            for status in ("firing", "resolved"):
                alerts = [a for a in changed if a["status"] == status]
                if alerts:
                    self._post(self.config.webhook_url, {
                        "version": "4", "status": status, "receiver": "watchkeeper",
                        "groupLabels": {"alertname": ALERT_NAME},
                        "commonLabels": {"alertname": ALERT_NAME}, "alerts": alerts})

    def _post(self, url: str, body: Any) -> None:
        for attempt in range(3):
            try:
                response = self._client.post(url, json=body)
            except httpx.HTTPError as exc:
                error = str(exc)
            else:
                if response.is_success:
                    self.sent += 1
                    return
                error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refuses it: sending again will not help
            if attempt < 2:
                log.info("alert delivery failed, retrying", extra={"error": error})
        log.warning("alert not delivered", extra={"url": url, "error": error})

    def close(self) -> None:
        self._client.close()


def _alert(run: Outcome, now: datetime) -> dict[str, Any]:
    r = run.result
    signal = str(r.details.get("signal", ""))
    labels = {"alertname": ALERT_NAME, "job": run.job_name, "scope": run.scope or "all",
              "detector": r.detector, "severity": "critical", "source": "watchkeeper"}
    if signal:
        labels["signal"] = signal
    finding = r.details.get("finding") or f"{signal or 'embeddings'} drifted"
    p_value = "n/a" if r.p_value is None else f"{r.p_value:.3g}"
    return {
        "status": "firing" if r.alert else "resolved", "labels": labels,
        "annotations": {"summary": f"{r.detector}: {finding} in {run.scope or 'all'}",
                        "description": f"p={p_value} < {r.threshold:g}, "
                                       f"effect={r.effect_size}"},
        "startsAt": _iso(now), "endsAt": _iso(now + HOLD),
        "generatorURL": "", "fingerprint": hashlib.sha256(
            repr(sorted(labels.items())).encode()).hexdigest()[:16]}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
