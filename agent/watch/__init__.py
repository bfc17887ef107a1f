"""The watch service: wk.samples → watchers → ClickHouse (scores, embeddings, flags) →
wk.feedback for flagged samples."""
