"""The app-side SDK: trace model calls and end-user feedback as OpenTelemetry GenAI spans.

`instrument()` wires the app to the sidecar and wraps the openai client; `llm_call` traces any
other model call; `feedback` records an end user's verdict, `evaluation` the app's own
evaluation of a call (a GenAI evaluation event); `conversation` stamps conversation
and user ids on every call inside a block. Importing this package does not import openai.
"""

from .context import Conversation, conversation, current_conversation
from .evaluation import evaluation
from .feedback import feedback
from .llm_call import LLMCall, current_call, llm_call
from .setup import Instrumentation, instrument

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
