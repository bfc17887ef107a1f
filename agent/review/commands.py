"""`watchkeeper review list | confirm | reject`: the review queue at the command line."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from rich.console import Console
from rich.table import Table

from watchkeeper.agent.config import Settings
from watchkeeper.agent.review.backend import open_reviews
from watchkeeper.agent.review.models import FlagQuery, FlagView, ReviewRequest

EXCERPT = 60
SHOWN_SCORES = 3


def review(settings: Settings, args: argparse.Namespace) -> int:
    with open_reviews(settings, args.api, args.token) as reviews:
        if args.action == "list":
            views = reviews.flags(FlagQuery(source=args.source, status=args.status,
                                            limit=args.limit)).flags
            show(views, args.format)
            return 0
        result = reviews.review(ReviewRequest(
            flag_ids=args.flag_ids, verdict="confirmed" if args.action == "confirm" else
            "rejected", reviewer=args.reviewer or getpass.getuser(), note=args.note or ""))
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
