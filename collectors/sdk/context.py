"""Conversation and end-user ids for every model call made inside a block of code.

Apps know the conversation and the user at the edge (the web request), not at the model call
deep inside a chain. A context variable carries them down so that the openai wrapper,
`llm_call` and `feedback` can stamp `gen_ai.conversation.id` and `user.id` on their spans
without threading arguments through the app. Context variables follow asyncio tasks; work
handed to a thread pool needs `contextvars.copy_context()` like any other context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Conversation:
    """The ids in effect for the current code path; either may be unknown."""

    conversation_id: str | None = None
    user_id: str | None = None


_NONE = Conversation()
_current: ContextVar[Conversation | None] = ContextVar("watchkeeper_conversation", default=None)


@contextmanager
def conversation(
    conversation_id: str | None = None, *, user_id: str | None = None
) -> Iterator[Conversation]:
    """Attribute every model call inside the block to this conversation and user.

    Blocks nest: an inner block overrides only the ids it names.
    """
    outer = current_conversation()
    inner = Conversation(
        conversation_id=conversation_id or outer.conversation_id,
        user_id=user_id or outer.user_id,
    )
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)


def current_conversation() -> Conversation:
    """The ids set by the innermost enclosing `conversation()` block (empty outside one)."""
    return _current.get() or _NONE
