"""The one configuration model: YAML (a file, or `env:NAME` for the text of an environment
variable, as the OpenTelemetry Collector's `--config=env:NAME`), then `WATCHKEEPER_*`
environment variables (nested with `__`, e.g. WATCHKEEPER_SIDECAR__OTLP_HTTP_PORT), then
command-line flags. A bad value fails at start naming the field and the reason.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from watchkeeper.agent.jobs import DetectorJob
from watchkeeper.detectors.options import as_error, describe, renamed
from watchkeeper.detectors.watchers import registry
from watchkeeper.detectors.watchers.base import WatcherSpec

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
Builtin = Literal["email", "phone", "card", "iban", "bank_account", "ssn", "national_id",
                  "api_key", "bearer", "basic_auth", "jwt", "private_key", "password", "ip"]
BUILTIN_REDACTIONS: tuple[Builtin, ...] = get_args(Builtin)
RedactionAction = Literal["mask", "drop", "pseudonymise"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _http_base(value: str) -> str:
    if urlsplit(value).scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    return value.rstrip("/")


# An http(s) URL that paths are appended to (an OTLP endpoint, an Alertmanager).
HttpBase = Annotated[str, AfterValidator(_http_base)]


def _secret_from_file(secret: SecretStr | None, path: Path | None) -> SecretStr | None:
    """Secrets come from env or a mounted file (Kubernetes secrets), never from argv."""
    if path is None:
        return secret
    return SecretStr(path.read_text().strip())


class RedactionPattern(Section):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    regex: str

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class DenyList(Section):
    """Exact strings that are always redacted (customer names, project code names), as
    `[REDACTED:<name>]`; matched whole-word, ignoring case unless case_sensitive."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    values: list[str] = Field(min_length=1)
    case_sensitive: bool = False

    @field_validator("values")
    @classmethod
    def _not_blank(cls, values: list[str]) -> list[str]:
        if any(not v.strip() for v in values):
            raise ValueError("a deny-list value must not be blank")
        return values


class RedactionPolicy(Section):
    """What to do with what is found, for some services, attribute keys and types: the first
    policy that matches a finding decides; none matching, `RedactionConfig.action` does."""

    action: RedactionAction
    services: list[str] = Field(default_factory=lambda: ["*"],
                                description="globs on the resource's service.name")
    attributes: list[str] = Field(default_factory=lambda: ["*"],
                                  description="globs on the attribute key; a log body is `body`")
    types: list[str] = Field(default_factory=list, description="empty: every type")

    def covers(self, service: str, key: str) -> bool:
        return (any(fnmatch.fnmatchcase(service, g) for g in self.services)
                and any(fnmatch.fnmatchcase(key, g) for g in self.attributes))


def _yaml_switch(value: Any) -> Any:
    """YAML reads a bare on/off as a boolean."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


def _native_installed(value: str) -> str:
    if value == "on" and importlib.util.find_spec("watchkeeper_native") is None:
        raise ValueError("the watchkeeper-native package is not installed "
                         "(pip install ./native, which needs a Rust toolchain)")
    return value


# Whether a step uses its compiled path (package watchkeeper-native, built from native/).
NativeSwitch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_yaml_switch),
                         AfterValidator(_native_installed)]


class RedactionConfig(Section):
    enabled: bool = True
    builtin: list[Builtin] = Field(
        default_factory=lambda: list(BUILTIN_REDACTIONS), description="the types detected")
    patterns: list[RedactionPattern] = Field(default_factory=list)
    deny_lists: list[DenyList] = Field(default_factory=list)
    action: RedactionAction = Field("mask", description="where no policy says otherwise")
    policies: list[RedactionPolicy] = Field(default_factory=list)
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US", "CA", "MX", "BR", "AR", "CO", "GB", "IE", "FR", "DE", "AT",
                                 "CH", "BE", "NL", "ES", "PT", "IT", "SE", "PL", "IN", "JP", "CN",
                                 "KR", "SG", "AU", "ZA", "NG", "AE"],
        description="regions whose national formats (no +country code) count as phone "
                    "numbers; international +CC numbers are found for every region")
    pseudonym_key: SecretStr | None = Field(None, description="HMAC key of `pseudonymise`")
    pseudonym_key_file: Path | None = None
    # Where the model server lives, not what the user said: left readable for debugging.
    skip_attributes: list[str] = Field(
        default_factory=lambda: ["server.address", "gen_ai.openai.api_base"])
    native: NativeSwitch = Field(
        "auto", description="the compiled detectors (package watchkeeper-native) for plain "
                            "ASCII values, the same findings as the Python ones: auto uses "
                            "them when installed, on requires them, off never uses them")

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, regions: list[str]) -> list[str]:
        import phonenumbers  # here: 28 ms to import, and most commands never redact

        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"not a region phonenumbers knows (ISO 3166 alpha-2): {unknown}")
        return regions

    @model_validator(mode="after")
    def _consistent(self) -> RedactionConfig:
        self.pseudonym_key = _secret_from_file(self.pseudonym_key, self.pseudonym_key_file)
        known = {*self.builtin, *(p.name for p in self.patterns),
                 *(d.name for d in self.deny_lists)}
        for policy in self.policies:
            if unknown := [t for t in policy.types if t not in known]:
                raise ValueError(f"policy types {unknown} are not detected (builtin, patterns "
                                 "or deny_lists)")
        pseudonymise = self.action == "pseudonymise" or any(
            p.action == "pseudonymise" for p in self.policies)
        key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else ""
        if pseudonymise and len(key) < 16:
            raise ValueError("pseudonymise needs pseudonym_key_file (or "
                             "WATCHKEEPER_SIDECAR__REDACTION__PSEUDONYM_KEY) of at least 16 "
                             "characters")
        return self


class SamplingConfig(Section):
    ratio: float = Field(1.0, ge=0.0, le=1.0, description="share of traces kept")
    keep_errors: bool = True


class SpoolConfig(Section):
    enabled: bool = Field(True, description="used with the Kafka bus; in-process needs none")
    directory: Path | None = Field(None, description="default: data_dir/spool")
    max_bytes: int = Field(1024 * 1024 * 1024, gt=0)


class WalConfig(Section):
    """The embedded bus's write-ahead log (docs/operations.md says how to size it)."""

    directory: Path | None = Field(None, description="default: data_dir/wal")
    fsync: Literal["batch", "interval"] = Field(
        "batch", description="batch: an export is answered once its records are fsync'd "
                             "(concurrent exports share one fsync); interval: once written, "
                             "fsync'd every fsync_interval_ms (a power cut can lose that much)")
    fsync_interval_ms: int = Field(200, gt=0, le=60_000)
    max_bytes: int = Field(256 * 1024 * 1024, gt=0,
                           description="log on disk (and in memory) before exports get 503")
    segment_bytes: int = Field(16 * 1024 * 1024, gt=0)

    @model_validator(mode="after")
    def _segments_fit(self) -> WalConfig:
        if self.max_bytes < 4 * self.segment_bytes:
            raise ValueError("max_bytes must hold at least 4 segments (segment_bytes): "
                             "only whole, consumed segments are deleted")
        return self


class LimitsConfig(Section):
    """What one span or log record may carry, like the OpenTelemetry SDK's SpanLimits and
    LogLimits; the sidecar cuts the rest and records the cut on the item."""

    enabled: bool = True
    attribute_value_bytes: int = Field(
        1024 * 1024, gt=0, description="UTF-8 bytes of a string value (or bytes of a bytes "
                                       "value) in any attribute or log body; prompts live here")
    array_values: int = Field(1024, gt=0, description="items of an array or key-value list value")
    span_attributes: int = Field(1024, gt=0)
    span_events: int = Field(1024, gt=0)
    span_links: int = Field(128, gt=0)
    event_attributes: int = Field(128, gt=0)
    link_attributes: int = Field(128, gt=0)
    log_attributes: int = Field(1024, gt=0, description="attributes of a log record")
    resource_attributes: int = Field(1024, gt=0, description="of a resource or a scope")


class SidecarConfig(Section):
    host: str = "127.0.0.1"
    otlp_http_port: int = Field(4318, ge=0, le=65535)
    otlp_grpc_port: int = Field(4317, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: Path | None = None
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    ack_timeout_s: float = Field(5.0, gt=0, description="wait for the bus before spooling")
    workers: int = Field(0, ge=0, le=64, description="processes that validate, redact and "
                         "split exports (0: the receiving process does): in `up`, redaction "
                         "then runs beside ingest and watch instead of sharing their core")

    @model_validator(mode="after")
    def _token(self) -> SidecarConfig:
        self.token = _secret_from_file(self.token, self.token_file)
        return self


class IngestConfig(Section):
    group: str = "wk-ingest"
    batch_max_rows: int = Field(5000, gt=0)
    flush_interval_s: float = Field(0.25, gt=0, description="how often ingest stores what is ready")
    join_window_s: float = Field(2.0, ge=0, description="how long a span waits for its logs")
    hash_user_ids: bool = True
    user_id_salt: SecretStr = SecretStr("")
    native: NativeSwitch = Field(
        "auto", description="the compiled span-to-row path (package watchkeeper-native): "
                            "auto uses it when installed, on requires it, off never uses it")


class StoreConfig(Section):
    url: str | None = Field(None, description="chdb:///path or http(s)://host:port; "
                                              "default: chdb under data_dir")
    database: str = "watchkeeper"
    username: str = "default"
    password: SecretStr | None = None
    password_file: Path | None = None
    verify_tls: bool = True
    ca_cert: Path | None = None
    retention_days: int = Field(30, ge=1)
    cluster: str | None = None
    replicated: bool = False
    reader_username: str = Field(
        "watchkeeper_reader", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="on a ClickHouse server, with reader_password set: the read-only account "
                    "user SQL runs as (`watchkeeper migrate --create-readonly-user`)")
    reader_password: SecretStr | None = None
    reader_password_file: Path | None = None

    @property
    def on_cluster(self) -> str:
        """The `ON CLUSTER` clause of DDL on this store ("" for a single server or chDB)."""
        return f"ON CLUSTER {self.cluster}" if self.cluster else ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("chdb", "http", "https"):
            raise ValueError("must start with chdb://, http:// or https://")
        return value

    @field_validator("database", "cluster")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not IDENTIFIER.match(value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @model_validator(mode="after")
    def _password(self) -> StoreConfig:
        self.password = _secret_from_file(self.password, self.password_file)
        self.reader_password = _secret_from_file(self.reader_password,
                                                 self.reader_password_file)
        return self


class KafkaConfig(Section):
    """Used when `bus` is kafka://…; every client setting passes through to kafka-python."""

    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$",
                              description="for several deployments on one cluster")
    partitions: int = Field(4, ge=1, description="for topics created when missing")
    replication_factor: int = Field(1, ge=1)
    client_id: str = "watchkeeper"
    compression: Literal["lz4", "gzip", "none"] = Field(
        "lz4", description="lz4 costs kafka-python least CPU; its gzip runs at level 9")
    linger_ms: int = Field(5, ge=0)
    batch_bytes: int = Field(256 * 1024, gt=0)
    max_message_bytes: int = Field(16 * 1024 * 1024, gt=0)
    delivery_timeout_ms: int = Field(10_000, gt=0)
    request_timeout_ms: int = Field(5_000, gt=0)
    max_block_ms: int = Field(2_000, gt=0, description="how long publish may wait for metadata")
    session_timeout_ms: int = Field(10_000, gt=0)
    max_poll_interval_ms: int = Field(300_000, gt=0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @model_validator(mode="after")
    def _password(self) -> KafkaConfig:
        self.sasl_password = _secret_from_file(self.sasl_password, self.sasl_password_file)
        if self.security_protocol.startswith("SASL") and not self.sasl_mechanism:
            raise ValueError("sasl_mechanism is required with a SASL security_protocol")
        if self.delivery_timeout_ms <= self.linger_ms + self.request_timeout_ms:
            raise ValueError("delivery_timeout_ms must exceed linger_ms + request_timeout_ms")
        return self

    def client_settings(self) -> dict[str, Any]:
        """The settings producer, consumer and admin client share."""
        settings: dict[str, Any] = {
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            settings["sasl_mechanism"] = self.sasl_mechanism
            settings["sasl_plain_username"] = self.sasl_username
            settings["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None)
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, name) is not None:
                settings[name] = str(getattr(self, name))
        return settings


def _default_watchers() -> list[WatcherSpec]:
    """What runs with no watcher configured: checks that need no model or download."""
    return [WatcherSpec(name="quality", kind="heuristics", field="completion",
                        thresholds={"refusal": 1.0, "pii": 1.0, "empty": 1.0})]


class WatchConfig(Section):
    group: str = "wk-watch"
    batch_max: int = Field(64, gt=0, description="samples per micro-batch")
    batch_wait_ms: int = Field(200, ge=0, description="how long a partial batch may wait")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    watchers: list[WatcherSpec] = Field(default_factory=_default_watchers)

    @field_validator("watchers", mode="wrap")
    @classmethod
    def _each(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> list[WatcherSpec]:
        """Every entry's kind and options, checked against the kind's options model (the
        registry's), and every error named after its watcher: `watch.watchers[2] (toxic):
        options.max_btach: Extra inputs are not permitted`."""
        if not isinstance(value, list):
            result: list[WatcherSpec] = handler(value)
            return result
        specs, errors = [], []
        for index, entry in enumerate(value):
            name = entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", None)
            try:
                spec = entry if isinstance(entry, WatcherSpec) else \
                    WatcherSpec.model_validate(entry)
            except ValidationError as exc:
                errors += renamed(exc, str(name or "unnamed"), at=(index,))
                continue
            errors += registry.config_errors(spec, index)
            specs.append(spec)
        if errors:
            raise as_error("WatchConfig", errors)
        checked: list[WatcherSpec] = handler(specs)
        return checked

    @field_validator("watchers")
    @classmethod
    def _unique(cls, value: list[WatcherSpec]) -> list[WatcherSpec]:
        names = [w.name for w in value]
        if len(names) != len(set(names)):
            raise ValueError(f"watcher names must be unique: {names}")
        leaders = {w.name for w in value if w.enabled and not w.sampling.after}
        for w in value:
            unknown = [name for name in w.sampling.after if name not in leaders]
            if unknown:
                raise ValueError(f"watcher {w.name!r}: sampling.after names {unknown}, which are "
                                 "not enabled watchers outside a cascade (a cascade is one step: "
                                 f"cheap watchers, then this one; those are {sorted(leaders)})")
        return value


class EvaluationExportConfig(Section):
    """Watchkeeper's judgments as OpenTelemetry `gen_ai.evaluation.result` log records, sent
    over OTLP/HTTP to a collector or any OpenTelemetry backend (docs/evaluations.md)."""

    endpoint: HttpBase | None = Field(None, description="OTLP/HTTP base URL, e.g. "
                                 "http://collector:4318 (records go to <endpoint>/v1/logs); "
                                 "unset: nothing is sent")
    watchers: list[str] | None = Field(None, description="the watchers whose scores are sent "
                                       "(null: every watcher; []: none)")
    token: SecretStr | None = Field(None, description="sent as Authorization: Bearer")
    token_file: Path | None = None
    timeout_s: float = Field(10.0, gt=0)
    max_queue_size: int = Field(2048, gt=0, description="records waiting to be sent; beyond "
                                "it the oldest are dropped, never the watch service blocked")
    max_batch: int = Field(512, gt=0)
    schedule_delay_ms: int = Field(1000, gt=0, description="longest wait before a batch goes")

    @model_validator(mode="after")
    def _token(self) -> EvaluationExportConfig:
        if self.max_batch > self.max_queue_size:
            raise ValueError("max_batch must not exceed max_queue_size")
        self.token = _secret_from_file(self.token, self.token_file)
        return self

    def sends(self, watcher: str) -> bool:
        return self.endpoint is not None and (self.watchers is None or watcher in self.watchers)


class AlertRulesConfig(Section):
    """Thresholds of the Grafana alert rules `watchkeeper dashboards export` writes
    (docs/dashboards.md): each rule fires when its value stays past the threshold for
    `pending`."""

    error_rate: float = Field(0.05, gt=0, le=1, description="share of calls that failed")
    latency_p95_ms: float = Field(10_000, gt=0)
    cost_per_hour_usd: float = Field(50.0, gt=0, description="what the calls of a service "
                                     "cost in the last hour (priced calls only)")
    flag_rate: float = Field(0.2, gt=0, le=1, description="share of a watcher label's "
                             "scored samples that it flagged")
    window_minutes: int = Field(10, ge=1, le=1440, description="the span each rule reads")
    pending: str = Field("5m", pattern=r"^\d+[smh]$", description="how long before firing")
    evaluate_every: str = Field("1m", pattern=r"^\d+[smh]$")


class ModelPrice(Section):
    """One model's price in US dollars per million tokens. `model` is matched lower-cased,
    against the sample's response model and then its request model, each as sent and without
    a provider prefix or a version suffix (agent/cost/prices.py)."""

    model: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
                       description="as providers name models: letters, digits and ._:/@+-")
    provider: str = Field("", max_length=100)
    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)
    cached_input: float | None = Field(None, ge=0, allow_inf_nan=False,
                                       description="input tokens read from the provider's "
                                                   "prompt cache; default: the input price")
    checked: date | None = Field(None, description="when the price was read off the "
                                                   "provider's price page")


class CostConfig(Section):
    """What calls cost: the packaged price table (agent/cost/prices.json), extended or
    overridden by model here; `samples.cost_usd` is computed from it at ingest."""

    prices: list[ModelPrice] = Field(default_factory=list, description="added to the "
                                     "packaged table; a model it has already is replaced")
    packaged: bool = Field(True, description="start from the packaged price table")


class EvaluationReceiveConfig(Section):
    """What ingest does with the `gen_ai.evaluation.result` records applications and other
    evaluators send (as OTLP log records, through the sidecar)."""

    enabled: bool = Field(True, description="store them in `scores` (source 'event'); off: "
                          "they are dropped like any log record that joins no span")
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="evaluation name -> score at or above which the "
        "sample is flagged for review (names without one never flag)")


class EvaluationsConfig(Section):
    export: EvaluationExportConfig = Field(default_factory=EvaluationExportConfig)
    receive: EvaluationReceiveConfig = Field(default_factory=EvaluationReceiveConfig)


class AlertDeliveryConfig(Section):
    """Where detector alerts go besides the review queue (docs/drift.md): an Alertmanager
    (API v2) and/or a webhook that takes Alertmanager's webhook payload."""

    alertmanager_url: HttpBase | None = Field(None, description="e.g. http://alertmanager:9093")
    webhook_url: HttpBase | None = None
    token: SecretStr | None = Field(None, description="sent as Authorization: Bearer")
    token_file: Path | None = None
    timeout_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _token(self) -> AlertDeliveryConfig:
        self.token = _secret_from_file(self.token, self.token_file)
        return self


class ScheduleConfig(Section):
    jobs: list[DetectorJob] = Field(default_factory=list)
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of every test")
    notify: AlertDeliveryConfig = Field(default_factory=AlertDeliveryConfig)

    @field_validator("jobs")
    @classmethod
    def _unique(cls, value: list[DetectorJob]) -> list[DetectorJob]:
        names = [j.name for j in value]
        if len(names) != len(set(names)):
            raise ValueError(f"job names must be unique: {names}")
        return value


class QueryLimits(Section):
    """Bounds on SQL a person wrote (the query API, `watchkeeper query`, `dashboards check`),
    enforced by the engine as settings of a read-only session that the query cannot change."""

    max_execution_time_s: int = Field(30, ge=1, description="then the query is cancelled")
    max_memory_bytes: int = Field(1024 ** 3, gt=0)
    max_result_rows: int = Field(10_000, gt=0, description="longer results are cut")
    max_rows_to_read: int = Field(1_000_000_000, gt=0)
    max_threads: int = Field(1, ge=1, description="cores one query may use")
    max_concurrent: int = Field(2, ge=1, description="queries running at once")
    queue_timeout_s: float = Field(5.0, gt=0, description="wait for a free slot, then 429")


class ApiConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8686, ge=0, le=65535)
    token: SecretStr | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _token(self) -> ApiConfig:
        self.token = _secret_from_file(self.token, self.token_file)
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATCHKEEPER_", env_nested_delimiter="__",
                                      extra="forbid")
    config_data: ClassVar[dict[str, Any] | None] = None

    data_dir: Path = Path(".watchkeeper")
    bus: str = "embedded://"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    sidecar: SidecarConfig = Field(default_factory=SidecarConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    query: QueryLimits = Field(default_factory=QueryLimits)
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    wal: WalConfig = Field(default_factory=WalConfig)
    watch: WatchConfig = Field(default_factory=WatchConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    evaluations: EvaluationsConfig = Field(default_factory=EvaluationsConfig)
    alerts: AlertRulesConfig = Field(default_factory=AlertRulesConfig)
    cost: CostConfig = Field(default_factory=CostConfig)

    @field_validator("bus")
    @classmethod
    def _bus(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme == "memory":  # the embedded bus's name before it had a log on disk
            return "embedded://"
        if scheme not in ("embedded", "kafka"):
            raise ValueError("must be embedded:// or kafka://host:port[,host:port]")
        if scheme == "kafka" and not urlsplit(value).netloc:
            raise ValueError("kafka:// needs at least one host:port")
        return value

    @property
    def wal_directory(self) -> Path:
        return self.wal.directory or self.data_dir / "wal"

    @property
    def store_url(self) -> str:
        return self.store.url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        if cls.config_data is not None:
            sources += (InitSettingsSource(settings_cls, init_kwargs=cls.config_data),)
        return sources


class ConfigError(Exception):
    """Raised with one line per bad field: `section.field: reason (got value)`."""


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        got = item.get("input")
        shown = "" if isinstance(got, dict | SecretStr) or got is None else f" (got {got!r})"
        # an error of one watcher or job names it: `watch.watchers[2] (toxic): options.x: ...`
        lines.append(f"{describe(item) or where + ': ' + item['msg']}{shown}")
    return "\n".join(lines)


ENV_CONFIG = "env:"


def read_config(config: str | Path) -> dict[str, Any]:
    """The YAML mapping of a config file, or of `env:NAME`'s variable (how an injected sidecar
    gets its config: a pod cannot mount a ConfigMap of another namespace)."""
    text = str(config)
    if text.startswith(ENV_CONFIG):
        name = text.removeprefix(ENV_CONFIG)
        where = f"config {text}"
        if name not in os.environ:
            raise ConfigError(f"{where}: the variable {name} is not set")
        source = os.environ[name]
    else:
        where = f"config file {config}"
        path = Path(config)
        if not path.is_file():
            raise ConfigError(f"{where}: not found")
        source = path.read_text()
    try:
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of sections, got {type(data).__name__}")
    return data


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Flags given on the command line (overrides) win over env, env over the config."""
    Settings.config_data = read_config(config) if config is not None else None
    try:
        return _nested(Settings, overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except OSError as exc:  # a *_file secret that cannot be read
        raise ConfigError(f"{exc.filename}: {exc.strerror}") from None
    finally:
        Settings.config_data = None


def _nested(cls: type[Settings], overrides: dict[str, Any]) -> Settings:
    """Overrides use dotted keys ("sidecar.otlp_http_port") so that flags name config fields."""
    tree: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    if not tree:
        return cls()
    # Merge flag values over what env and file say for the same section.
    base = cls().model_dump()
    for section, values in tree.items():
        if isinstance(values, dict) and isinstance(base.get(section), dict):
            merged = _deep_merge(base[section], values)
            tree[section] = _unwrap_secrets(merged)
    return cls(**tree)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(
            out.get(key), dict) else value
    return out


def _unwrap_secrets(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.get_secret_value() if isinstance(v, SecretStr) else
                _unwrap_secrets(v) if isinstance(v, dict) else v) for k, v in values.items()}
