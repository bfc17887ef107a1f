"""`watchkeeper <command>`: the one entry point of every process and tool."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import sys
from pathlib import Path
from typing import Any

from watchkeeper.agent.config import ConfigError, Settings, load_settings
from watchkeeper.detectors.bias.options import PairAuditOptions

# Each kind of process has its own default API port, so that a sidecar, ingest, watch and
# schedule can run side by side on one host (as docs/operations.md runs them). An api.port in
# the config file or WATCHKEEPER_API__PORT, or --api-port, wins over it.
API_PORTS = {"up": 8686, "ingest": 8686, "sidecar": 8687, "watch": 8688, "schedule": 8689}


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(args.config, **overrides)


def _serve(args: argparse.Namespace, *, sidecar: bool, ingest: bool, watch: bool,
           schedule: bool = False) -> int:
    from watchkeeper.agent import logs
    from watchkeeper.agent.runtime import Runtime, serve_until_signal

    settings = _settings(args, **{
        "bus": args.bus,
        "sidecar.otlp_http_port": getattr(args, "otlp_http_port", None),
        "sidecar.otlp_grpc_port": getattr(args, "otlp_grpc_port", None),
        "store.url": getattr(args, "store_url", None),
        "api.port": args.api_port,
    })
    settings.api.port = api_port(settings, args.command)
    shares_bus = sidecar or ingest or watch  # schedule alone reads only the store
    if shares_bus and not (sidecar and ingest) and settings.bus.startswith("embedded"):
        raise ConfigError(f"bus: {args.command} alone needs a shared bus such as "
                          "kafka://host:9092 (the in-process bus only works inside `up`)")
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(serve_until_signal(Runtime(settings, sidecar=sidecar, ingest=ingest,
                                           watch=watch, schedule=schedule)))
    return 0


def api_port(settings: Settings, command: str) -> int:
    """The API port a serving command binds: api.port when the file, env or --api-port set
    it, else the command's own default (API_PORTS)."""
    if "port" in settings.api.model_fields_set:
        return settings.api.port
    return API_PORTS[command]


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


def _floats(value: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers."""
    try:
        return tuple(float(part) for part in _csv(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas: {value!r}"
                                         ) from None


def _non_negative_int(value: str) -> int:
    """An argparse type: 0, 1, 2, ..."""
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0: {value!r}")
    return int(value)


def _positive_float(value: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0: {value!r}")
    return number


def cmd_up(args: argparse.Namespace) -> int:
    return _serve(args, sidecar=True, ingest=True, watch=not args.no_watch, schedule=True)


def cmd_sidecar(args: argparse.Namespace) -> int:
    return _serve(args, sidecar=True, ingest=False, watch=False)


def cmd_ingest(args: argparse.Namespace) -> int:
    return _serve(args, sidecar=False, ingest=True, watch=args.with_watch)


def cmd_watch(args: argparse.Namespace) -> int:
    return _serve(args, sidecar=False, ingest=False, watch=True)


def cmd_schedule(args: argparse.Namespace) -> int:
    return _serve(args, sidecar=False, ingest=False, watch=False, schedule=True)


def cmd_detect(args: argparse.Namespace) -> int:
    from watchkeeper.agent.schedule.adhoc import DetectRequest, detect

    request = DetectRequest(detector=args.detector, window=args.window,
                            reference=args.reference, field=args.field,
                            embedding=args.embedding, scope=_csv(args.scope),
                            probes=tuple(args.probe or ()), api=args.api, format=args.format)
    return detect(_settings(args, **{"store.url": args.store_url}), request)


def cmd_eval_drift(args: argparse.Namespace) -> int:
    from watchkeeper.agent.schedule.evaluation import DriftEvalRequest, eval_drift

    return eval_drift(DriftEvalRequest(
        reference=args.reference, shifted=args.shifted, text_col=args.text_col,
        window=args.window, levels=args.levels, trials=args.trials,
        detectors=tuple(args.detector or ()), out=args.out, plot=args.plot))


def cmd_migrate(args: argparse.Namespace) -> int:
    from watchkeeper.agent.cost.prices import sync_prices
    from watchkeeper.agent.store.client import Store
    from watchkeeper.agent.store.migrate import migrate
    from watchkeeper.agent.store.reader import create_reader

    settings = _settings(args, **{"store.url": args.store_url})
    if args.create_readonly_user and settings.store_url.startswith("chdb:"):
        raise ConfigError("--create-readonly-user: needs a ClickHouse server (store.url); the "
                          "embedded store confines user SQL per session instead")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.store_url, settings.store)
    try:
        applied = migrate(store)
        sync_prices(store, settings.cost)
        reader = create_reader(store, settings.query) if args.create_readonly_user else None
    finally:
        store.close()
    print(json.dumps({"applied": applied, "readonly_user": reader}))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from watchkeeper.agent.query import run_query, show

    settings = _settings(args, **{"store.url": args.store_url})
    columns, rows = run_query(settings, args.sql, api=args.api, token=args.token)
    show(columns, rows, args.format)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from watchkeeper.agent.demo.runner import run_demo

    return run_demo(args.endpoint, rounds=args.rounds, token=args.token,
                    interval_s=args.interval)


def cmd_train_watcher(args: argparse.Namespace) -> int:
    from watchkeeper.agent.watch.training import TrainRequest, train_watcher
    from watchkeeper.detectors.watchers.encoder_tuning import Tuning

    request = TrainRequest(name=args.name, data=_labelled_files(args),
                           from_reviews=args.from_reviews, source=args.source, api=args.api,
                           token=args.token, threshold_rule=args.threshold_rule,
                           combine=args.combine, force=args.force, tolerance=args.tolerance,
                           from_events=args.from_events, event_threshold=args.event_threshold,
                           event_field=args.event_field,
                           augment_axes=tuple(a.strip() for a in (args.augment_swaps or "")
                                              .split(",") if a.strip()),
                           tuning=Tuning(layers=args.tune_layers, epochs=args.tune_epochs)
                           if args.tune_layers else None)
    return train_watcher(_settings(args, **{"store.url": args.store_url}), request)


def cmd_eval_watcher(args: argparse.Namespace) -> int:
    from watchkeeper.agent.watch.evaluation import EvalRequest, eval_watcher

    request = EvalRequest(watcher=args.watcher, data=_labelled_files(args), out=args.out)
    return eval_watcher(_settings(args), request)


def _labelled_files(args: argparse.Namespace) -> list[Any]:
    from watchkeeper.agent.watch.labelled import labelled_files

    if args.data and not (args.text_col and args.label_col):
        raise SystemExit("--data needs --text-col and --label-col")
    return labelled_files(args.data, args.text_col, args.label_col, args.positive)


def cmd_review(args: argparse.Namespace) -> int:
    """`review list` lists; `review confirm | reject` records a verdict (by default as the
    user running the command)."""
    import getpass

    from watchkeeper.agent.review.commands import ListRequest, review
    from watchkeeper.agent.review.models import FlagQuery, ReviewRequest

    request: ListRequest | ReviewRequest
    if args.action == "list":
        request = ListRequest(query=FlagQuery(source=args.source, status=args.status,
                                              limit=args.limit), format=args.format)
    else:
        request = ReviewRequest(flag_ids=args.flag_ids,
                                verdict="confirmed" if args.action == "confirm" else "rejected",
                                reviewer=args.reviewer or getpass.getuser(),
                                note=args.note or "",
                                correction=getattr(args, "correction", None) or "")
    return review(_settings(args, **{"store.url": args.store_url}), request,
                  api=args.api, token=args.token)


def cmd_export(args: argparse.Namespace) -> int:
    from watchkeeper.agent.durations import parse_since
    from watchkeeper.agent.review.export import ExportRequest, export

    request = ExportRequest(out=args.out, status=args.status, source=args.source,
                            since=parse_since(args.since) if args.since else None,
                            format=args.format)
    return export(_settings(args, **{"store.url": args.store_url}), request,
                  api=args.api, token=args.token)


def cmd_audit_watcher(args: argparse.Namespace) -> int:
    from watchkeeper.agent.schedule.audit import INPUT_ERRORS, AuditRequest, audit_watcher

    request = AuditRequest(watcher=args.watcher, pairs=args.pairs, a_col=args.a_col,
                           b_col=args.b_col, group_col=args.group_col, label=args.label,
                           alpha=args.alpha, tolerance=args.tolerance, since=args.since,
                           limit=args.limit, text=args.text, axes=_csv(args.axes),
                           api=args.api, token=args.token, out=args.out)
    try:
        return audit_watcher(_settings(args, **{"store.url": args.store_url}), request)
    except INPUT_ERRORS as exc:  # bad input, said in one line: exit 2, as argparse does
        print(f"watchkeeper audit-watcher: {exc}", file=sys.stderr)
        return 2


def cmd_reprice(args: argparse.Namespace) -> int:
    from watchkeeper.agent.cost.reprice import RepriceRequest, reprice
    from watchkeeper.agent.durations import parse_since

    try:
        request = RepriceRequest(since=parse_since(args.since))
    except ValueError as exc:
        print(f"watchkeeper reprice: {exc}", file=sys.stderr)
        return 2
    result = reprice(_settings(args, **{"store.url": args.store_url}), request,
                     api=args.api, token=args.token)
    if args.format == "json":
        print(json.dumps(result))
        return 0
    print(f"repriced {result['days']} day(s) from {result['since']} with {result['models']} "
          f"priced models: {result['calls']} calls, {result['priced']} priced, "
          f"${result['cost_usd']:.4f}")
    for unpriced in result["unpriced_models"]:
        print(f"  no price: {unpriced['model']} ({unpriced['calls']} calls); add it under "
              "cost.prices")
    return 0


def cmd_dashboards(args: argparse.Namespace) -> int:
    from watchkeeper.dashboards import command

    request: command.DashboardsRequest
    if args.action == "export":
        request = command.ExportRequest(out=args.out, dashboards_only=args.dashboards_only,
                                        clickhouse_url=args.clickhouse_url)
    elif args.action == "push":
        request = command.PushRequest(grafana_url=args.grafana_url, token_file=args.token_file)
    elif args.action == "report":
        request = command.ReportRequest(out=args.out, hours=args.hours, api=args.api,
                                        token=args.token)
    else:
        request = command.CheckRequest(hours=args.hours, api=args.api, token=args.token)
    return command.run(request, _settings(args, **{"store.url": getattr(args, "store_url",
                                                                        None)}))


def reaches_store(command: argparse.ArgumentParser) -> None:
    """Options of a command that reads or writes the store beside a running agent."""
    command.add_argument("--data-dir", type=Path)
    command.add_argument("--store-url")
    command.add_argument("--api", help="URL of a running agent's API (default: the agent that "
                                       "owns --data-dir, if one runs)")
    command.add_argument("--token", help="API token (or WATCHKEEPER_API__TOKEN)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="watchkeeper", description=__doc__)
    root.add_argument("--config", default=None,
                      help="YAML config file, or env:NAME for YAML in a variable "
                           "(env WATCHKEEPER_* and flags override it)")
    sub = root.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run sidecar + ingest + API in one process (embedded default)")
    sidecar = sub.add_parser("sidecar", help="run the OTLP receivers, forwarding to the bus")
    ingest = sub.add_parser("ingest", help="run ingest: bus → ClickHouse")
    watch = sub.add_parser("watch", help="run the watchers: wk.samples → scores, flags")
    schedule = sub.add_parser("schedule", help="run the drift and bias jobs of the config")
    up.add_argument("--no-watch", action="store_true", help="capture only, no watchers")
    ingest.add_argument("--with-watch", action="store_true",
                        help="also run the watchers in this process (shares its store)")
    for command in (up, sidecar, ingest, watch, schedule):
        command.add_argument("--data-dir", type=Path,
                             help="embedded store (and the sidecar's spool) live here")
        command.add_argument("--bus", help="embedded:// (only inside up) or kafka://host:port")
    for command, name in ((up, "up"), (sidecar, "sidecar"), (ingest, "ingest"), (watch, "watch"),
                          (schedule, "schedule")):
        command.add_argument("--api-port", type=int,
                             help="health, readiness, metrics, query (default: api.port, else "
                                  f"{API_PORTS[name]} for {name})")
    for command in (up, sidecar):
        command.add_argument("--otlp-http-port", type=int)
        command.add_argument("--otlp-grpc-port", type=int)
    for command in (up, ingest, watch, schedule):
        command.add_argument("--store-url", help="chdb:///path or http(s)://host:port")
    up.set_defaults(func=cmd_up)
    sidecar.set_defaults(func=cmd_sidecar)
    ingest.set_defaults(func=cmd_ingest)
    watch.set_defaults(func=cmd_watch)
    schedule.set_defaults(func=cmd_schedule)

    detect = sub.add_parser("detect", help="run one drift detector (or the bias analysis) "
                                           "now and print the result")
    detect.add_argument("--detector", required=True,
                        help="mmd, classifier, pca_ks (embeddings), signals or bias")
    detect.add_argument("--probe", action="append", metavar="WATCHER[:LABEL]",
                        help="bias: a watcher of watch.watchers to probe (repeatable)")
    detect.add_argument("--window", default="1h")
    detect.add_argument("--reference", default="24h",
                        help="previous, a duration before the window, or START/END")
    detect.add_argument("--field", choices=("prompt", "completion"), default="prompt")
    detect.add_argument("--embedding", default="minilm", help="the embedding watcher's name")
    detect.add_argument("--scope", default="service",
                        help="comma-separated: service, request_model, environment")
    detect.add_argument("--data-dir", type=Path)
    detect.add_argument("--store-url")
    detect.add_argument("--api", help="a running agent's API (default: the store's owner)")
    detect.add_argument("--format", choices=("table", "json"), default="table")
    detect.set_defaults(func=cmd_detect)

    drift = sub.add_parser("eval-drift", help="detection power and false alarms of detectors")
    drift.add_argument("--reference", type=Path, required=True)
    drift.add_argument("--shifted", type=Path, required=True)
    drift.add_argument("--text-col", default=None, help="for CSV/JSONL corpora")
    drift.add_argument("--window", type=int, default=1000)
    drift.add_argument("--levels", type=_floats, default=(0.0, 0.05, 0.1, 0.2),
                       help="shares of the window drawn from --shifted, comma-separated")
    drift.add_argument("--trials", type=int, default=20)
    drift.add_argument("--detector", action="append", help="repeatable; default: all")
    drift.add_argument("--out", type=Path)
    drift.add_argument("--plot", type=Path)
    drift.set_defaults(func=cmd_eval_drift)

    train = sub.add_parser("train-watcher", help="train a trainable-head watcher from labels "
                                                 "and/or reviewed flags")
    evaluate = sub.add_parser("eval-watcher", help="AUROC, precision/recall/F1, calibration")
    for command, required in ((train, False), (evaluate, True)):
        command.add_argument("--data", type=Path, required=required, action="append",
                             default=[], help="labelled CSV or JSONL; repeat for several "
                                              "sources (figures are reported per source)")
        command.add_argument("--text-col", action="append", default=[],
                             help="once (shared by every --data) or once per --data, in order")
        command.add_argument("--label-col", action="append", default=[],
                             help="labels 0/1 or true/false; once or once per --data")
        command.add_argument("--positive", metavar="VALUES", action="append",
                             help="label values that count as positive, comma-separated "
                                  "(e.g. --positive 0,1 for Davidson's class); others are 0; "
                                  "once or once per --data")
    evaluate.add_argument("--data-dir", type=Path)
    reaches_store(train)
    train.add_argument("--name", required=True, help="the watcher's name")
    train.add_argument("--from-reviews", action="store_true",
                       help="also learn from reviewed flags: confirmed = 1, rejected = 0")
    train.add_argument("--source", help="whose flags --from-reviews reads "
                                        "(default: watcher:NAME)")
    train.add_argument("--threshold-rule", default="balanced",
                       help="balanced (default: max TPR - FPR), f1, precision:P or recall:R, "
                            "on the validation split")
    train.add_argument("--from-events", metavar="NAME",
                       help="also learn from received gen_ai.evaluation.result events of this "
                            "evaluation name (a reviewer's verdict on the same text wins)")
    train.add_argument("--event-threshold", type=float,
                       help="an event's score at or above it is 1 (default: "
                            "evaluations.receive.thresholds[NAME])")
    train.add_argument("--event-field", choices=("completion", "prompt"), default="completion",
                       help="the text of the judged call to learn from")
    train.add_argument("--augment-swaps", metavar="AXES",
                       help="also train on each text with its group words swapped (bias "
                            "lexicon axes, comma-separated, or all; e.g. gender): the group "
                            "alone is no evidence")
    train.add_argument("--combine", choices=("auto", "logit_mean", "max", "none"),
                       default="auto", help="combine the head with the profanity model; auto "
                       "(default): wherever the profanity model knows something of the label, "
                       "by logit_mean unless it costs over 0.01 validation AUROC, else the "
                       "better of max and logit_mean (docs/watchers.md)")
    train.add_argument("--tune-layers", type=_non_negative_int, default=0, metavar="N",
                       help="also fine-tune the encoder's top N layers on the training split "
                            "(2 is measured in docs/watchers.md; default 0: a linear head on "
                            "frozen embeddings)")
    train.add_argument("--tune-epochs", type=_positive_float, default=2.0, metavar="E",
                       help="passes over the training split when tuning (default 2)")
    train.add_argument("--force", action="store_true",
                       help="make the new version current even if it is worse than the "
                            "current one on the held-back rows")
    train.add_argument("--tolerance", type=float, default=0.01,
                       help="AUROC a new version may lose on any source's held-back rows and "
                            "still become current (default 0.01)")
    evaluate.add_argument("--watcher", required=True, help="a configured or trained watcher")
    evaluate.add_argument("--out", type=Path, help="write the report as JSON here")
    train.set_defaults(func=cmd_train_watcher)
    evaluate.set_defaults(func=cmd_eval_watcher)

    review = sub.add_parser("review", help="the review queue: list, confirm, reject flags")
    actions = review.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="flags with excerpts of their samples")
    listing.add_argument("--source", help="e.g. watcher:toxic")
    listing.add_argument("--status", choices=("open", "confirmed", "rejected", "all"),
                         default="open")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--format", choices=("table", "json"), default="table")
    reaches_store(listing)
    for action in ("confirm", "reject"):
        verdict = actions.add_parser(action, help=f"{action} flags (the latest verdict wins)")
        verdict.add_argument("flag_ids", nargs="+", metavar="FLAG_ID")
        verdict.add_argument("--reviewer", help="default: the current user")
        verdict.add_argument("--note")
        if action == "confirm":
            verdict.add_argument("--correction", help="the answer the model should have given "
                                 "(exported as a preference pair: --format dpo)")
        reaches_store(verdict)
    review.set_defaults(func=cmd_review)

    export = sub.add_parser("export", help="flagged samples as fine-tuning data")
    export.add_argument("--out", type=Path, required=True)
    export.add_argument("--status", choices=("confirmed", "flagged", "rejected"),
                        default="confirmed", help="flagged = every flag, reviewed or not")
    export.add_argument("--source", help="e.g. watcher:toxic")
    export.add_argument("--since", help="a duration back from now (7d) or an ISO date/time")
    export.add_argument("--format", choices=("jsonl", "csv", "chat", "dpo", "dpo-trl", "parquet"),
                        default="jsonl", help="chat = OpenAI fine-tuning JSONL; dpo = OpenAI "
                        "preference fine-tuning JSONL (the correction preferred over the flagged "
                        "answer), dpo-trl = the same pairs as TRL's prompt/chosen/rejected; csv = "
                        "text,label for train-watcher; parquet = the csv columns + messages")
    reaches_store(export)
    export.set_defaults(func=cmd_export)

    audit = sub.add_parser("audit-watcher", help="bias audit: does a watcher score minimal "
                                                 "pairs (texts that differ only in the group) "
                                                 "differently?")
    audit.add_argument("--watcher", required=True, help="a configured or trained watcher")
    audit.add_argument("--pairs", type=Path, help="CSV/TSV or JSONL of minimal pairs (default: "
                                                  "stored texts with their group words swapped)")
    audit.add_argument("--a-col", help="--pairs: the reference group's text")
    audit.add_argument("--b-col", help="--pairs: the same text about the group")
    audit.add_argument("--group-col", help="--pairs: the group (default: one group, 'all')")
    audit.add_argument("--label", help="the watcher's label to audit")
    audit.add_argument("--alpha", type=float, default=0.05,
                       help="family-wise error rate across groups (Holm)")
    audit.add_argument("--tolerance", type=float, default=PairAuditOptions().tolerance,
                       help="smallest mean score difference worth a flag (default %(default)s)")
    audit.add_argument("--since", default="7d", help="stored texts: a duration back from now")
    audit.add_argument("--limit", type=int, default=5000, help="stored texts: samples read")
    audit.add_argument("--text", choices=("prompt", "completion", "both"), default="both",
                       help="stored texts: which to swap")
    audit.add_argument("--axes", help="stored texts: comma-separated (default: every axis)")
    audit.add_argument("--out", type=Path, help="write the report as JSON here")
    reaches_store(audit)
    audit.set_defaults(func=cmd_audit_watcher)

    reprice = sub.add_parser("reprice", help="price stored calls again by the price table as "
                                             "config has it now (docs/dashboards.md)")
    reprice.add_argument("--since", required=True,
                         help="a duration back from now (7d) or an ISO date/time; whole days "
                              "from the one it falls in are repriced")
    reprice.add_argument("--format", choices=("table", "json"), default="table")
    reaches_store(reprice)
    reprice.set_defaults(func=cmd_reprice)

    migrate = sub.add_parser("migrate", help="create or upgrade the ClickHouse schema")
    migrate.add_argument("--data-dir", type=Path)
    migrate.add_argument("--store-url", help="chdb:///path or http(s)://host:port")
    migrate.add_argument("--create-readonly-user", action="store_true",
                         help="also create or update the read-only account user SQL runs as "
                              "(store.reader_username / store.reader_password)")
    migrate.set_defaults(func=cmd_migrate)

    query = sub.add_parser("query", help="read-only SQL over the store")
    query.add_argument("sql")
    reaches_store(query)
    query.add_argument("--format", choices=("table", "json"), default="table")
    query.set_defaults(func=cmd_query)

    demo = sub.add_parser("demo", help="drive realistic LLM traffic through the SDK")
    demo.add_argument("--endpoint", default="http://127.0.0.1:4318",
                      help="OTLP/HTTP endpoint of a running agent or sidecar")
    demo.add_argument("--rounds", type=int, default=1, help="repeat the scripted traffic")
    demo.add_argument("--interval", type=float, default=0.0,
                      help="seconds between rounds (so the dashboards' charts show a line)")
    demo.add_argument("--token", help="sidecar token, if it requires one")
    demo.set_defaults(func=cmd_demo)

    injector = sub.add_parser("injector", help="the sidecar injector: a mutating admission "
                                               "webhook for Kubernetes (docs/deploy.md)")
    injector.add_argument("--port", type=int, default=8443)
    injector.add_argument("--host", default="0.0.0.0")
    injector.add_argument("--tls-cert", type=Path, required=True, help="PEM certificate chain")
    injector.add_argument("--tls-key", type=Path, required=True, help="PEM private key")
    injector.add_argument("--template", type=Path,
                          default=Path("/etc/watchkeeper/injector/template.yaml"),
                          help="what to inject, as the Helm chart renders it")
    injector.set_defaults(func=cmd_injector)

    dashboards = sub.add_parser("dashboards", help="Grafana dashboards: export, check, push")
    boards = dashboards.add_subparsers(dest="action", required=True)
    out = boards.add_parser("export", help="dashboard JSON + Grafana provisioning files")
    out.add_argument("--out", type=Path, required=True)
    out.add_argument("--dashboards-only", action="store_true",
                     help="only dashboards/*.json (what the Helm chart ships)")
    out.add_argument("--clickhouse-url", help="the server Grafana reads (default: store.url, "
                                              "else http://clickhouse:8123)")
    check = boards.add_parser("check", help="run every panel's SQL against the store")
    report = boards.add_parser("report", help="the dashboards as one static HTML file")
    report.add_argument("--out", type=Path, default=Path("watchkeeper-report.html"))
    for command in (check, report):
        reaches_store(command)
        command.add_argument("--hours", type=float, default=24, help="time range, ending now")
    push = boards.add_parser("push", help="create or update the dashboards in a Grafana")
    push.add_argument("--grafana-url", required=True)
    push.add_argument("--token-file", type=Path,
                      help="a Grafana service-account token (default: env GRAFANA_TOKEN)")
    dashboards.set_defaults(func=cmd_dashboards)
    return root


def cmd_injector(args: argparse.Namespace) -> int:
    from watchkeeper.agent import logs
    from watchkeeper.agent.inject.server import InjectorOptions, serve
    from watchkeeper.agent.inject.template import load_template

    settings = _settings(args)
    logs.configure(settings.log_level, settings.log_format)
    options = InjectorOptions(template=load_template(args.template), tls_cert=args.tls_cert,
                              tls_key=args.tls_key, host=args.host, port=args.port)
    asyncio.run(serve(options))
    return 0


def _port_flags(command: str) -> str:
    if command == "injector":
        return "--port"
    flags = ["--api-port (api.port)"]
    if command in ("up", "sidecar"):
        flags += ["--otlp-http-port (sidecar.otlp_http_port)",
                  "--otlp-grpc-port (sidecar.otlp_grpc_port)"]
    return ", ".join(flags)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
    except ConfigError as exc:
        print(f"watchkeeper: configuration error\n{exc}", file=sys.stderr)
        code = 2
    except OSError as exc:
        print(f"watchkeeper {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if exc.errno == errno.EADDRINUSE:
            print(f"watchkeeper {args.command}: a port is taken; choose another with "
                  f"{_port_flags(args.command)}", file=sys.stderr)
        code = 1
    except Exception as exc:
        if not isinstance(exc, KeyboardInterrupt):
            print(f"watchkeeper {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
