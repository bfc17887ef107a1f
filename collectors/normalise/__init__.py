"""Normalisation of every GenAI attribute shape into one `Sample` per LLM call."""

from watchkeeper.collectors.normalise.normaliser import (
    NormaliseOptions,
    is_feedback,
    is_llm_call,
    to_feedback,
    to_sample,
    to_span_record,
)
from watchkeeper.collectors.normalise.sample import Feedback, Message, Part, Sample, SpanRecord

__all__ = [
    "Feedback",
    "Message",
    "NormaliseOptions",
    "Part",
    "Sample",
    "SpanRecord",
    "is_feedback",
    "is_llm_call",
    "to_feedback",
    "to_sample",
    "to_span_record",
]
