"""The watch service: wk.samples → watchers → ClickHouse (scores, embeddings, flags) →
wk.flagged for flagged samples (agent/bus/flagged.py)."""
