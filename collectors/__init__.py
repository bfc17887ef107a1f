"""Getting data into Watchkeeper: the app-side SDK, the OTLP receivers and the normaliser.

The SDK entry points are re-exported here (`watchkeeper.collectors.instrument`, `llm_call`,
`feedback`, `evaluation`, `conversation`) but loaded on first use, so processes that only need the
normaliser or the receivers (the sidecar, ingest) never pay for the SDK's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .sdk import (
        Conversation,
        Instrumentation,
        LLMCall,
        conversation,
        current_call,
        current_conversation,
        evaluation,
        feedback,
        instrument,
        llm_call,
    )

__all__ = [
    "Conversation",
    "Instrumentation",
    "LLMCall",
    "conversation",
    "current_call",
    "current_conversation",
    "evaluation",
    "feedback",
    "instrument",
    "llm_call",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module(".sdk", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
