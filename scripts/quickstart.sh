#!/usr/bin/env bash
# The embedded default end to end: start `watchkeeper up` (sidecar + ingest + API, in-process
# bus, chDB store under ./.watchkeeper), send demo traffic through the SDK, show what landed,
# and stop the agent with SIGTERM (it drains before exiting). In a terminal the agent stays up
# for the live view at http://127.0.0.1:8686/ui/ until Ctrl-C (WATCHKEEPER_QUICKSTART_STAY=0:
# stop at once).
set -euo pipefail
cd "$(dirname "$0")/.."
WK=.venv/bin/watchkeeper
DATA=${WATCHKEEPER_DATA_DIR:-.watchkeeper}
HTTP_PORT=${OTLP_HTTP_PORT:-4318}
API_PORT=${API_PORT:-8686}
LOG=$(mktemp)

$WK --config docs/examples/embedded.yaml up --data-dir "$DATA" --otlp-http-port "$HTTP_PORT" --otlp-grpc-port "${OTLP_GRPC_PORT:-4317}" \
  --api-port "$API_PORT" >"$LOG" 2>"$LOG.err" &
AGENT=$!
trap 'kill -TERM $AGENT 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do  # the first start loads the watcher models
  grep -q '"event": "ready"' "$LOG" 2>/dev/null && break
  kill -0 $AGENT 2>/dev/null || { cat "$LOG.err"; exit 1; }
  sleep 0.2
done
echo "agent ready: OTLP/HTTP :$HTTP_PORT, API :$API_PORT, store $DATA"

# three rounds a few seconds apart, so the dashboards' charts draw lines rather than points
$WK demo --endpoint "http://127.0.0.1:$HTTP_PORT" --rounds 3 --interval 3
sleep 5  # the join window (content logs may trail their spans), then the watchers

echo; echo "captured, per service and model:"
$WK query --data-dir "$DATA" "SELECT service, request_model, count() AS calls,
  countIf(status = 'error') AS errors, sum(redactions) AS redactions,
  uniqExact(conversation_id) AS conversations, round(avg(duration_ms), 1) AS avg_ms
  FROM samples WHERE ingested_at > now() - INTERVAL 10 MINUTE
  GROUP BY service, request_model ORDER BY service"
echo; echo "a few captured calls (PII already redacted by the sidecar):"
$WK query --data-dir "$DATA" "SELECT service, substring(prompt_text, 1, 60) AS prompt,
  substring(completion_text, 1, 60) AS completion, redactions FROM samples
  WHERE redactions > 0 OR completion_text ILIKE '%moron%' ORDER BY ts DESC LIMIT 6"
echo; echo "what the watchers flagged (the review queue):"
$WK query --data-dir "$DATA" "SELECT f.source AS watcher, f.label AS label, round(f.score, 2) AS score,
  s.service AS service, substring(if(f.reason LIKE '%on prompt', s.prompt_text, s.completion_text), 1, 70) AS text
  FROM flags AS f INNER JOIN samples AS s ON s.sample_id = f.sample_id
  WHERE f.created_at > now() - INTERVAL 10 MINUTE ORDER BY f.source, f.label"
echo; echo "scores per watcher and label:"
$WK query --data-dir "$DATA" "SELECT watcher, label, count() AS scored, countIf(flagged) AS flagged,
  round(avg(score), 3) AS mean, round(quantile(0.5)(latency_ms), 2) AS p50_ms FROM scores
  WHERE scored_at > now() - INTERVAL 10 MINUTE GROUP BY watcher, label ORDER BY watcher, label"
echo; echo "end-user feedback:"
$WK query --data-dir "$DATA" "SELECT service, thumbs, count() AS n FROM user_feedback
  GROUP BY service, thumbs ORDER BY service, thumbs"
echo; echo "the Grafana dashboards, rendered offline (same panels, same SQL):"
$WK dashboards report --data-dir "$DATA" --hours 1 --out "$DATA/report.html"

echo; echo "live dashboards and the review queue: http://127.0.0.1:$API_PORT/ui/"
if [ -t 0 ] && [ -t 1 ] && [ "${WATCHKEEPER_QUICKSTART_STAY:-1}" != 0 ]; then
  echo "the agent keeps running for the live view: press Ctrl-C to stop it"
  trap 'kill -TERM $AGENT 2>/dev/null || true' INT  # a script's background job ignores SIGINT
  wait $AGENT || true
  wait $AGENT 2>/dev/null && echo "agent drained and stopped (exit 0)"
  trap - EXIT INT
  exit 0
fi
kill -TERM $AGENT
wait $AGENT && echo "agent drained and stopped (exit 0)"
trap - EXIT
