"""`watchkeeper review list | confirm | reject` and `watchkeeper export`: the review queue at
the command line. The CLI turns the commands' arguments into typed requests (`ListRequest`,
`ReviewRequest`, `ExportRequest`); what runs them takes only those."""

from __future__ import annotations

import json
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from watchkeeper.agent.config import Settings
from watchkeeper.agent.review.backend import open_reviews
from watchkeeper.agent.review.models import FlagQuery, FlagView, ReviewRequest

EXCERPT = 60
SHOWN_SCORES = 3


class ListRequest(BaseModel):
    """`review list`: which flags, shown how."""

    model_config = ConfigDict(extra="forbid")

    query: FlagQuery = Field(default_factory=FlagQuery)
    format: Literal["table", "json"] = "table"


def review(settings: Settings, request: ListRequest | ReviewRequest, *, api: str | None = None,
           token: str | None = None) -> int:
    """Through the API of the agent that owns the store (`api`, `token`), or the store."""
    with open_reviews(settings, api, token) as reviews:
        if isinstance(request, ListRequest):
            show(reviews.flags(request.query).flags, request.format)
            return 0
        result = reviews.review(request)
    print(f"{result.verdict} {len(result.reviewed)} flag(s) as {result.reviewer}")
    return 0


def show(views: list[FlagView], fmt: str) -> None:
    if fmt == "json":
        for view in views:
            print(json.dumps({**view.model_dump(mode="json"), "status": view.status}))
        return
    table = Table(show_lines=True)
    table.add_column("flag_id", no_wrap=True, min_width=36)  # copied into confirm / reject
    for column in ("ts", "service", "source", "label", "score", "status", "prompt",
                   "completion", "scores"):
        table.add_column(column)
    for view in views:
        flag = view.flag
        scores = ", ".join(f"{s.watcher}/{s.label}={s.score:.2f}"
                           for s in [s for s in view.scores if s.score > 0][:SHOWN_SCORES])
        table.add_row(str(flag.flag_id), flag.ts.strftime("%Y-%m-%d %H:%M:%S"), flag.service,
                      flag.source, f"{flag.label} ({flag.field})", f"{flag.score:.2f}",
                      view.status, _excerpt(view.prompt), _excerpt(view.completion), scores)
    out = Console(width=220) if not sys.stdout.isatty() else Console()
    out.print(table)
    out.print(f"{len(views)} flag(s)")


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[:EXCERPT - 1] + "…"
