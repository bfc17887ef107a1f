"""Judgments as OpenTelemetry GenAI evaluation events (`gen_ai.evaluation.result`): `events`
maps Watchkeeper's scores to the convention's attributes, `emitter` sends them over OTLP."""
