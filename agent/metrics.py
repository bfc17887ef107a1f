"""Prometheus metrics of every service, served at /metrics by the API listener."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECEIVED = Counter("wk_sidecar_received_total", "OTLP items received", ["signal", "transport"])
REJECTED = Counter("wk_sidecar_rejected_total", "OTLP items rejected as invalid", ["signal"])
SAMPLED_OUT = Counter("wk_sidecar_sampled_out_total", "OTLP items dropped by head sampling",
                      ["signal"])
REDACTIONS = Counter("wk_sidecar_redactions_total", "findings redacted before forwarding, "
                     "by type (email, phone, …, or a custom pattern's name)", ["signal", "type"])
LIMITED = Counter("wk_sidecar_limited_total",
                  "attributes, events, links and array items dropped, and values shortened, "
                  "by the sidecar's limits; `limit` names the sidecar.limits field",
                  ["signal", "limit"])
BAD_REQUESTS = Counter("wk_sidecar_bad_requests_total", "malformed OTLP requests", ["transport"])
UNAUTHORIZED = Counter("wk_sidecar_unauthorized_total", "requests without a valid token",
                       ["transport"])
SPOOL_RECORDS = Gauge("wk_sidecar_spool_records", "messages waiting in the disk spool")
SPOOL_BYTES = Gauge("wk_sidecar_spool_bytes", "bytes waiting in the disk spool")
PUBLISH_ERRORS = Counter("wk_bus_publish_errors_total", "messages the bus refused", ["topic"])

INGEST_MESSAGES = Counter("wk_ingest_messages_total", "bus messages consumed", ["signal"])
INGEST_ROWS = Counter("wk_ingest_rows_total", "rows inserted", ["table"])
INGEST_DEAD_LETTERS = Counter("wk_ingest_dead_letters_total", "undecodable messages set aside")
INGEST_STORE_ERRORS = Counter("wk_ingest_errors_total",
                              "failed ingest steps (bus or store unavailable), retried")
INGEST_ORPHAN_LOGS = Counter("wk_ingest_orphan_logs_total",
                             "content log records that never met their span")
INGEST_INSERT_SECONDS = Histogram("wk_ingest_insert_seconds", "ClickHouse insert latency",
                                  ["table"])
INGEST_LAG = Gauge("wk_ingest_consumer_lag", "messages not yet committed by ingest")
INGEST_PENDING = Gauge("wk_ingest_pending_items", "spans and logs waiting in the join window")

WATCH_ITEMS = Counter("wk_watch_items_total", "texts scored", ["watcher"])
WATCH_SECONDS = Histogram("wk_watch_batch_seconds", "time to score one micro-batch", ["watcher"])
WATCH_SKIPPED = Counter("wk_watch_skipped_total", "samples a watcher did not score, by why: "
                        "policy (its lists, only_after), sampled (its rate), budget_calls, "
                        "budget_tokens", ["watcher", "reason"])
WATCH_BUDGET = Gauge("wk_watch_budget_remaining", "what a watcher's budget has left",
                     ["watcher", "budget"])
WATCH_FLAGGED = Counter("wk_watch_flagged_samples_total", "samples sent to the review queue")

WAL_BYTES = Gauge("wk_bus_wal_bytes", "bytes in the embedded bus's write-ahead log")
WAL_SEGMENTS = Gauge("wk_bus_wal_segments", "segment files of the write-ahead log")
WAL_SYNC_SECONDS = Histogram("wk_bus_wal_sync_seconds", "time of one write-ahead log fsync "
                             "(one per group of concurrent publishes)",
                             buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1))
WAL_CUT_BYTES = Counter("wk_bus_wal_cut_bytes_total", "bytes of torn or corrupt write-ahead "
                        "log tails cut at start (a crash mid-write)")

INJECTOR_REVIEWS = Counter("wk_injector_reviews_total", "pod admission reviews answered, by "
                           "result: injected, unchanged, denied, bad_request", ["result"])
EVALUATIONS_EMITTED = Counter("wk_evaluations_emitted_total", "gen_ai.evaluation.result records "
                              "queued for the OTLP export, by source: watcher, review",
                              ["source"])
INGEST_EVALUATIONS = Counter("wk_ingest_evaluations_total", "gen_ai.evaluation.result records "
                             "received: stored (in scores) or unjoined (no span named, or no "
                             "value)", ["result"])
