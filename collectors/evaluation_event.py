"""The GenAI evaluation event's names (OpenTelemetry semantic conventions v1.38.0, status
Development), shared by the SDK that sends it and the agent that sends and receives it: a log
record named `gen_ai.evaluation.result`, parented to the evaluated span. The evaluator's
provenance (`gen_ai.evaluation.evaluator.*`) is an open proposal. A module of its own, so that
neither side imports the other's dependencies."""

SEMCONV_VERSION = "1.38.0"
EVENT_NAME = "gen_ai.evaluation.result"
NAME = "gen_ai.evaluation.name"
SCORE_VALUE = "gen_ai.evaluation.score.value"
SCORE_LABEL = "gen_ai.evaluation.score.label"
EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"
RESPONSE_ID = "gen_ai.response.id"
EVALUATOR_ID = "gen_ai.evaluation.evaluator.id"  # proposed
EVALUATOR_TYPE = "gen_ai.evaluation.evaluator.type"  # proposed
EVALUATOR_VERSION = "gen_ai.evaluation.evaluator.version"  # proposed
