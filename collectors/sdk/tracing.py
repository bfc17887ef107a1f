"""Which tracer and content policy the SDK's own spans use right now.

`instrument()` installs its provider's tracer here, so the openai wrapper, `llm_call` and
`feedback` reach the same pipeline even when that provider is not the global one
(`set_global=False`). Without `instrument()`, they use the global OpenTelemetry tracer, which
lets apps that already configure OpenTelemetry use `llm_call` and `feedback` on their own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry._logs import Logger

SCOPE_NAME = "watchkeeper.collectors.sdk"
try:
    SCOPE_VERSION = version("watchkeeper")
except PackageNotFoundError:  # running from a source tree without an install
    SCOPE_VERSION = "0+unknown"


@dataclass(frozen=True)
class Settings:
    """The tracer that records GenAI spans, and whether prompts and completions go with them."""

    tracer: trace.Tracer
    capture_content: bool = True
    # where evaluation events go (log records); None until instrument() made a LoggerProvider
    logger: Logger | None = None


# A ProxyTracer until a global provider is set, then that provider's tracer.
_DEFAULT = Settings(tracer=trace.get_tracer(SCOPE_NAME, SCOPE_VERSION))
_lock = threading.Lock()
_active: Settings | None = None


def current() -> Settings:
    """The installed settings, or the global tracer with content capture on."""
    return _active or _DEFAULT


def activate(settings: Settings) -> None:
    """Route the SDK's spans to `settings` until `deactivate(settings)`."""
    global _active
    with _lock:
        _active = settings


def deactivate(settings: Settings) -> None:
    """Fall back to the global tracer, unless someone else has activated newer settings."""
    global _active
    with _lock:
        if _active is settings:
            _active = None
