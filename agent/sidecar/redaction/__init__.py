"""Redaction of personal data and secrets before anything leaves the pod (see otlp.py for what
is redacted and how the counts travel, values.py for JSON, policy.py for the actions)."""

from watchkeeper.agent.sidecar.redaction.otlp import REDACTIONS_KEY, Redactor

__all__ = ["REDACTIONS_KEY", "Redactor"]
