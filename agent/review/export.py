"""`watchkeeper export`: flagged samples, with their verdicts, as fine-tuning data.

Formats (one line or row per flag):
- jsonl: the flag, its latest review (or null), its status and the whole sample;
- csv: `text` (the flagged prompt or completion) and `label` (1 = confirmed or still open,
  i.e. the watcher's say-so; 0 = rejected), plus ids and provenance columns: ready for
  `watchkeeper train-watcher --text-col text --label-col label`;
- chat: OpenAI fine-tuning JSONL, {"messages": [...]} from the sample's system instructions,
  input and output messages (text parts; roles system, user, assistant). A sample without
  assistant text is skipped: a chat example needs one.
- parquet: the csv columns plus `messages` (the chat example's list of {role, content}, empty
  without assistant text), typed, for dataset tooling (pandas, Hugging Face datasets, Spark).

The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from pydantic import BaseModel, ConfigDict

from watchkeeper.agent.config import Settings
from watchkeeper.agent.review.backend import RecordStream, open_reviews
from watchkeeper.agent.review.models import Record, RecordQuery, Status

CSV_COLUMNS = ("text", "label", "flag_id", "sample_id", "source", "flag_label", "field",
               "status", "score", "ts")
CHAT_ROLES = {"system": "system", "developer": "system", "user": "user",
              "assistant": "assistant"}
ExportStatus = Literal["confirmed", "flagged", "rejected"]
EXPORT_STATUS: dict[ExportStatus, Status] = {"confirmed": "confirmed", "rejected": "rejected",
                                             "flagged": "all"}


class ExportRequest(BaseModel):
    """What to export, where to, in which format (`watchkeeper export`'s options)."""

    model_config = ConfigDict(extra="forbid")

    out: Path
    status: ExportStatus = "confirmed"  # flagged = every flag, reviewed or not
    source: str | None = None
    since: datetime | None = None  # flags on samples from then on
    format: Literal["jsonl", "csv", "chat", "dpo", "dpo-trl", "parquet"] = "jsonl"

    def query(self) -> RecordQuery:
        return RecordQuery(source=self.source, status=EXPORT_STATUS[self.status],
                           since=self.since)


def _messages(record: Record, *, answer: bool) -> list[dict[str, str]]:
    """The call as chat messages: system instructions, the prompt, and the model's answer."""
    sample = record.sample
    messages = []
    roles = {m.role for m in sample.input_messages}
    if sample.system_instructions and not roles & {"system", "developer"}:
        messages.append({"role": "system", "content": sample.system_instructions})
    for message in (*sample.input_messages, *(sample.output_messages if answer else ())):
        role = CHAT_ROLES.get(message.role)
        text = message.text()
        if role and text:
            messages.append({"role": role, "content": text})
    return messages


def chat_example(record: Record) -> dict[str, Any] | None:
    """{"messages": [...]} for OpenAI fine-tuning, or None without assistant text."""
    messages = _messages(record, answer=True)
    if not messages or messages[-1]["role"] != "assistant":
        return None
    return {"messages": messages}


def preference_pair(record: Record) -> tuple[list[dict[str, str]], str, str] | None:
    """(prompt messages, preferred = the reviewer's correction, non-preferred = the flagged
    answer), or None for a flag without a correction or a sample without an answer."""
    correction = record.review.correction if record.review else ""
    flagged = record.sample.completion_text
    prompt = _messages(record, answer=False)
    if not correction or not flagged or not prompt:
        return None
    return prompt, correction, flagged


def dpo_example(record: Record) -> dict[str, Any] | None:
    """OpenAI's preference (DPO) fine-tuning line: input.messages, preferred_output and
    non_preferred_output, one assistant message each."""
    pair = preference_pair(record)
    if pair is None:
        return None
    prompt, preferred, rejected = pair
    return {"input": {"messages": prompt},
            "preferred_output": [{"role": "assistant", "content": preferred}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}]}


def trl_example(record: Record) -> dict[str, Any] | None:
    """TRL's DPOTrainer in its conversational form: prompt, chosen, rejected."""
    pair = preference_pair(record)
    if pair is None:
        return None
    prompt, preferred, rejected = pair
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": preferred}],
            "rejected": [{"role": "assistant", "content": rejected}]}



def _jsonl(record: Record) -> dict[str, Any]:
    return {**record.model_dump(mode="json"), "status": record.status}


def _csv(record: Record) -> dict[str, Any]:
    flag = record.flag
    return {"text": record.text(), "label": 0 if record.status == "rejected" else 1,
            "flag_id": flag.flag_id, "sample_id": flag.sample_id, "source": flag.source,
            "flag_label": flag.label, "field": flag.field, "status": record.status,
            "score": flag.score, "ts": flag.ts.isoformat()}


# the JSON-lines formats: one line per record, or None to skip it
LINES: dict[str, Callable[[Record], dict[str, Any] | None]] = {
    "jsonl": _jsonl, "chat": chat_example, "dpo": dpo_example, "dpo-trl": trl_example}


def write(records: Iterable[Record], out: TextIO, fmt: str) -> tuple[int, int]:
    """Write in the format; returns (written, skipped for lack of assistant text, or of a
    correction for the preference formats)."""
    written = skipped = 0
    writer = csv.DictWriter(out, CSV_COLUMNS) if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for record in records:
        if writer is not None:
            writer.writerow(_csv(record))
        else:
            line = LINES[fmt](record)
            if line is None:
                skipped += 1
                continue
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        written += 1
    return written, skipped


def write_parquet(records: Iterable[Record], path: Path) -> tuple[int, int]:
    """One table, written at the end (a fine-tuning set fits in memory); returns (written, 0)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text_columns = [c for c in CSV_COLUMNS if c not in ("label", "score")]
    rows = []
    for record in records:
        row = _csv(record)
        example = chat_example(record)
        rows.append({**row, **{c: str(row[c]) for c in text_columns},
                     "messages": example["messages"] if example else []})
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([*((c, pa.string()) for c in text_columns), ("label", pa.int8()),
                        ("score", pa.float32()), ("messages", pa.list_(message))])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")
    return len(rows), 0


def export(settings: Settings, request: ExportRequest, *, api: str | None = None,
           token: str | None = None) -> int:
    """Through the API of the agent that owns the store (`api`, `token`), or the store."""
    out_path = request.out
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.partial")
    try:
        with open_reviews(settings, api, token) as reviews:
            records = RecordStream(reviews, request.query())
            if request.format == "parquet":
                written, skipped = write_parquet(records, partial)
            else:
                with partial.open("w", newline="", encoding="utf-8") as out:
                    written, skipped = write(records, out, request.format)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out_path)
    notes = [f"{n} {why}" for n, why in ((records.missing, "whose sample has expired"),
                                         (skipped, "without assistant text"
                                          + (" or correction" if request.format.startswith(
                                              "dpo") else ""))) if n]
    print(f"exported {written} {request.status} flag(s) as {request.format} to {out_path}"
          + (f" (skipped {', '.join(notes)})" if notes else ""))
    return 0
