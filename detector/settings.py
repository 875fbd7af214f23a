"""Configuration, declared once: environment (`STREAMDRIFT_…`, nested with `__`) over an
optional TOML file (`--config` or `STREAMDRIFT_CONFIG`) over these defaults.

Both are strict: an unknown key in the file is an error, and so is a variable under the prefix
that names no setting (except those in NOT_SETTINGS, such as the service links Kubernetes
injects). Variables outside the prefix are none of the detector's business.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
import tomllib
import types
from collections.abc import Mapping
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "STREAMDRIFT_"
CONFIG_ENV_VAR = "STREAMDRIFT_CONFIG"
# Variables under the prefix that are not settings: the config file's path; the service links
# Kubernetes injects into every pod of a namespace with a Service named `streamdrift`
# (<SERVICE>_SERVICE_HOST, _SERVICE_PORT[_<port name>], _PORT[_<port>_<protocol>[_PROTO|_PORT|_ADDR]]);
# and the test suite's own STREAMDRIFT_TEST_… (tests/conftest.py), which its subprocesses inherit.
NOT_SETTINGS = re.compile(
    rf"{CONFIG_ENV_VAR}|{ENV_PREFIX}(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?|TEST_\w+)"
)

# The parsed TOML file of the load_settings call in progress (a source below the environment).
_config_file_data: ContextVar[dict[str, Any]] = ContextVar(
    "config_file_data",
    default={},  # noqa: B039 (never mutated: each load sets a new dict)
)


# librdkafka's defaults of the request timeouts (CONFIGURATION.md), when kafka.properties leaves them out
LIBRDKAFKA_REQUEST_TIMEOUT_MS = 30_000
LIBRDKAFKA_SOCKET_TIMEOUT_MS = 60_000


class Strict(BaseModel):
    """Base for nested settings: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProcessingGuarantee(str, Enum):
    exactly_once = "exactly_once"
    at_least_once = "at_least_once"


class KafkaSettings(Strict):
    """How to reach the cluster. `properties` passes any librdkafka property through
    (security.protocol, sasl.*, ssl.*, …) to every client the detector creates."""

    bootstrap_servers: str = Field(
        "", description="host:port list; empty means 'no cluster' (demo starts an embedded broker)"
    )
    group_id: str = Field(
        "streamdrift", min_length=1, description="consumer group id; also names alert sources"
    )
    transactional_id: str = Field(
        "", description="transactional.id under exactly_once; default '<group_id>-<hostname>'"
    )
    session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        description="consumer session timeout (classic protocol; under 'consumer' the broker's "
        "group.consumer.session.timeout.ms applies)",
    )
    max_poll_interval_ms: int = Field(
        300_000,
        ge=10_000,
        description="longest time between two polls of the input consumer before the group gives up on the "
        "member; the work done on a revoke gets half of it",
    )
    group_protocol: Literal["classic", "consumer"] = Field(
        "classic",
        description="consumer group protocol: 'classic', or 'consumer' (KIP-848, Apache Kafka 4.0+: the broker "
        "assigns with its range assignor and rebalances incrementally)",
    )
    properties: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka properties, passed through verbatim"
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="librdkafka properties that are secrets (e.g. sasl.password); never logged",
    )

    @field_validator("properties")
    @classmethod
    def _no_owned_properties(cls, value: dict[str, Any]) -> dict[str, Any]:
        owned = {
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "isolation.level",
            "transactional.id",
            "group.protocol",
        }
        clash = sorted(owned & value.keys())
        if clash:
            raise ValueError(
                f"{', '.join(clash)} is set by streamdrift itself; use the dedicated setting"
            )
        return value

    def client_config(self) -> dict[str, Any]:
        """Properties shared by every client: bootstrap servers, passthrough and secrets."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, **self.properties}
        config.update({key: secret.get_secret_value() for key, secret in self.secrets.items()})
        return config

    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"

    def request_timeout_s(self) -> float:
        """How long librdkafka waits for a broker's answer before it gives the request up (and
        retries it, on the new leader if there is one): the shorter of `request.timeout.ms` (produce
        requests) and `socket.timeout.ms` (the others) in `properties`, at librdkafka's defaults
        of 30 s and 60 s when not set."""
        return (
            min(
                float(self.properties.get("request.timeout.ms", LIBRDKAFKA_REQUEST_TIMEOUT_MS)),
                float(self.properties.get("socket.timeout.ms", LIBRDKAFKA_SOCKET_TIMEOUT_MS)),
            )
            / 1000
        )


class TopicSettings(Strict):
    """Topic names, and whether the detector may create missing ones."""

    predictions: str = "predictions"
    features: str = "features"
    labels: str = "labels"
    alerts: str = "drift-alerts"
    dlq: str = "drift-dlq"
    state: str = Field("", description="compacted state topic; default '<kafka.group_id>-state'")
    create_missing: bool = Field(
        True, description="create missing topics at start (else a clear error)"
    )
    partitions: int = Field(3, ge=1, description="partition count for topics the detector creates")
    replication_factor: int = Field(
        1, ge=1, description="replication for topics the detector creates"
    )

    def inputs(self) -> list[str]:
        """The co-partitioned input topics, in the order the consumer subscribes to them."""
        return [self.predictions, self.features, self.labels]


class MetricsSettings(Strict):
    host: str = Field("0.0.0.0", description="bind address of /metrics, /healthz, /readyz")
    port: int = Field(9477, ge=0, le=65535, description="0 picks a free port and logs it")
    stall_after_s: float = Field(
        120.0,
        ge=10,
        description="/healthz and /readyz answer 503 when the consumer loop has not completed a step for this long "
        "(e.g. a commit hung on a dead transaction coordinator), so that a liveness probe restarts the process; "
        "at least 10 s, since a metadata request may block for 5 s",
    )


class FieldMapping(Strict):
    """Names of the event fields, for producers whose logs use other names."""

    model: str = "model"
    version: str = "version"
    id: str = "id"
    ts: str = "ts"
    features: str = "features"
    prediction: str = "prediction"
    score: str = "score"
    latency_ms: str = "latency_ms"
    label: str = "label"


class DetectionSettings(Strict):
    """Detector defaults; every model can override any of them under [models.<name>.detection].

    All counts are in events of the monitored signal. Thresholds are not set directly: they
    are derived from `false_alarm_budget_per_million` and the number of detectors a model runs.
    """

    warmup_events: int = Field(
        1000, ge=50, description="reference sample size; no alert before it is full"
    )
    reference_bins: int = Field(
        128, ge=8, le=4096, description="quantile knots kept per numeric reference"
    )
    max_categories: int = Field(
        64, ge=2, le=4096, description="categories kept per reference; the rest pool as 'other'"
    )
    false_alarm_budget_per_million: float = Field(
        0.1,
        gt=0,
        description="expected false alarms per million events per model, all monitors together",
    )
    block_events: int = Field(
        16, ge=1, le=1024, description="ADWIN is fed means of blocks of this many events"
    )
    adwin_max_buckets: int = Field(5, ge=2)
    min_effect_sd: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="smallest change ADWIN alerts on, in standard deviations of the watched statistic under its "
        "reference (a cut whose two windows differ by less is absorbed, not alerted; 0: every cut alerts)",
    )
    page_hinkley_delta: float = Field(
        0.05, ge=0.01, le=0.2, description="Page-Hinkley slack on the PIT scale [0, 1]"
    )
    page_hinkley_alpha: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Page-Hinkley forgetting factor (thresholds are calibrated for 1)",
    )
    cooldown_events: int = Field(
        2000, ge=0, description="after a resolve, no new alert on the monitor for this long"
    )
    resolve_window_events: int = Field(
        1000, ge=50, description="window that must be back within the reference band"
    )
    rebaseline_after_events: int = Field(
        20_000,
        ge=0,
        description="a drift still open after this many events re-learns its reference (0: never); on a fast "
        "model's first day it is held open instead until the day's hours are known",
    )
    season_max_warmup_events: int = Field(
        1_000_000,
        ge=0,
        le=5_000_000,
        description="a signal whose week (else day) of traffic, at its warm-up's event-time rate, fits in this many "
        "events learns its daily/weekly cycle over it before alerting, and is then judged against its usual value "
        "for the hour; faster traffic learns its week while watching: its first day against its warm-up's "
        "reference, then against that day's hours (the other kind of day learned unwatched), and switches after "
        "the week (0: no seasonal adjustment)",
    )
    disabled_monitors: list[str] = Field(
        default_factory=list, description="monitor names or prefixes to skip"
    )
    version_idle_events: int = Field(
        10_000,
        ge=1,
        description="a model version with no prediction among its model's last this-many predictions is no longer "
        "live: its output monitors are dropped (an open drift of theirs resolved, reason version_retired), and a "
        "later prediction of it is a deployment again (a rollback)",
    )
    version_compare_events: int = Field(
        5000,
        ge=100,
        description="live versions of a model are compared over each run of this many of the model's predictions "
        "(mean score, and accuracy or absolute error of the labels joined meanwhile)",
    )
    version_compare_alpha: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="significance level of a comparison window's tests, Holm-adjusted over the window's pairs "
        "and statistics: below it, io.streamdrift.version.compared is published",
    )


Severity = Literal["warning", "critical"]


class RetrainSettings(Strict):
    """When to recommend retraining a model (`io.streamdrift.retrain.recommended`) and when its
    next version counts as recovered (`io.streamdrift.retrain.outcome`); every model can override
    any of them under [models.<name>.retrain]. Performance is accuracy for classifiers and the
    mean absolute error for regressions, of a model version's labelled predictions."""

    enabled: bool = Field(True, description="publish retraining recommendations and outcomes")
    performance_drop: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="recommend when a version's accuracy over min_labelled_events labelled predictions is more than "
        "this below its reference accuracy (a regression's error more than this share above its reference error), "
        "and significantly so (p below alpha)",
    )
    min_labelled_events: int = Field(
        500,
        ge=30,
        description="labelled predictions a performance decision rests on: the run over which a drop must hold, and "
        "the new version's first labels that decide a retraining's outcome",
    )
    alpha: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="significance level a performance drop must pass (two-sided test against the reference), so "
        "that noise in min_labelled_events labels does not recommend retraining",
    )
    input_severities: list[Severity] = Field(
        ["critical"],
        description="severities of input drift (feature.* monitors) that recommend retraining once open for "
        "open_drift_events events; empty: input drift alone never does",
    )
    open_drift_events: int = Field(
        5000,
        ge=1,
        description="events of the model (predictions, features and labels) an input drift of those severities "
        "must stay open for before retraining is recommended",
    )
    recovered_within: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="performance this close to the reference (accuracy points; a regression's share of its "
        "reference error) counts as recovered: it ends an episode, and decides a retraining's outcome",
    )


class ModelSettings(Strict):
    """What is known about one model. Models not listed are monitored with defaults."""

    owner: str = ""
    runbook_url: str = ""
    task: Literal["auto", "classification", "regression"] = "auto"
    features: list[str] | None = Field(
        None, description="features to monitor; default: all seen (capped)"
    )
    ignore_features: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(
        default_factory=list, description="numeric-looking features to treat as categories"
    )
    fields: dict[str, str] = Field(
        default_factory=dict, description="field mapping overrides for this model"
    )
    detection: dict[str, Any] = Field(default_factory=dict, description="overrides of [detection]")
    retrain: dict[str, Any] = Field(default_factory=dict, description="overrides of [retrain]")
    label_ttl_seconds: float = Field(
        86_400.0, gt=0, description="how long a prediction waits for its label (event time)"
    )
    label_wait_seconds: float = Field(
        300.0, ge=0, description="how long a label that came first waits for its prediction"
    )
    label_maturity_seconds: float | None = Field(
        None,
        gt=0,
        description="age by which a prediction normally has its label; default: learned (3 × p95 of the first delays)",
    )
    label_sample_rate: float = Field(
        1.0,
        gt=0,
        le=1,
        description="share of predictions kept for the label join (by id hash): bounds memory at high traffic",
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FieldMapping.model_fields) | ({"model"} & set(value)))
        if unknown:
            raise ValueError(
                f"cannot map {', '.join(unknown)} per model (the model field is global)"
            )
        return value

    @field_validator("detection")
    @classmethod
    def _valid_detection(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The overrides validated (raises with the offending key) and converted: "500" from the
        environment becomes 500, as it would in [detection]."""
        validated = DetectionSettings(**value)
        return {key: getattr(validated, key) for key in value}

    @field_validator("retrain")
    @classmethod
    def _valid_retrain(cls, value: dict[str, Any]) -> dict[str, Any]:
        """The overrides validated and converted, as `detection`'s (how they combine with the
        global [retrain] is checked by `Settings`)."""
        validated = RetrainSettings(**value)
        return {key: getattr(validated, key) for key in value}


class StateSettings(Strict):
    """Checkpointing of detector state to `topics.state` (see detector/core/state.py for the format)."""

    enabled: bool = Field(
        True, description="checkpoint and restore detector state; off: every start re-learns"
    )
    signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key; when set, state records without a valid signature are ignored",
    )


FaultPoint = Literal["after_alerts", "before_commit", "after_commit", "in_revoke"]


class FaultSettings(Strict):
    """Fault injection for crash tests only: the process exits abruptly (no cleanup) at a point."""

    point: FaultPoint | None = Field(None, description="where to exit; unset in production")
    after: int = Field(1, ge=1, description="exit the N-th time the point is reached")
    restore_delay_ms: int = Field(
        0,
        ge=0,
        description="wait this long after each state record read on restore (a slow restore)",
    )


# Room left beside limits.max_output_bytes for a record's headers and framing: a dead letter's
# headers take under 2 kB (detector.core.pipeline.DeadLetter, tested).
OUTPUT_HEADROOM_BYTES = 8192


class LimitSettings(Strict):
    """Caps that bound memory and metric cardinality; overflow is counted, never a crash."""

    max_models: int = Field(
        1000,
        ge=1,
        description="models monitored per process, auto-discovered ones included; at the cap a new model evicts the least "
        "recently seen model still in its warm-up, and is refused (model_cap) only when all are past it",
    )
    model_idle_seconds: float = Field(
        14 * 86_400.0,
        ge=0,
        description="a model with no message for this long (by the Kafka message timestamps of its partition) is evicted "
        "with its state and metric series, and starts afresh if it comes back (0: never)",
    )
    max_features_per_model: int = Field(100, ge=1)
    max_message_bytes: int = Field(
        1_000_000, ge=1024, description="larger messages are dead-lettered"
    )
    max_output_bytes: int = Field(
        900_000,
        ge=100_000,
        description="largest key plus value of a dead letter or alert the detector writes: a bad message over it is "
        "dead-lettered cut to it (headers give its size and SHA-256), an alert over it has its long texts shortened. "
        f"With {OUTPUT_HEADROOM_BYTES:,} bytes for headers it must fit the producer's message.max.bytes (librdkafka "
        "default 1,000,000; checked when set in kafka.properties) and the broker's or topic's max.message.bytes "
        "(Apache Kafka default 1,048,588)",
    )
    max_model_name_length: int = Field(200, ge=1, le=10_000)
    max_category_length: int = Field(
        200, ge=1, description="longer categorical values are truncated"
    )
    max_pending_labels: int = Field(
        50_000,
        ge=1,
        description="predictions waiting for a label, per model (about 130 bytes each); the oldest go first",
    )
    max_pending_labels_total: int = Field(
        500_000,
        ge=1,
        description="predictions waiting for a label in the whole process; beyond it new ones are not kept",
    )
    pending_labels_before_first: int = Field(
        1000,
        ge=0,
        description="predictions a model keeps waiting before its first label ever arrives (about 130 bytes each): "
        "its first ones, so that a first label hours late still joins; later ones are not kept (nor counted) until a label comes",
    )
    max_waiting_labels: int = Field(
        10_000, ge=1, description="labels waiting for their prediction, per model"
    )
    max_recall_classes: int = Field(
        10, ge=0, description="classes with their own recall monitor, per model"
    )
    max_versions_per_model: int = Field(
        4,
        ge=1,
        le=64,
        description="live versions with their own output monitors, per model; predictions of a further version "
        "are not monitored on the output side (counted) until a live one retires",
    )


class Settings(BaseSettings):
    """The root of the configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    fields: FieldMapping = Field(default_factory=FieldMapping)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    fault_injection: FaultSettings = Field(default_factory=FaultSettings)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    processing_guarantee: ProcessingGuarantee = ProcessingGuarantee.exactly_once
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="detector processes in this pod, each a member of the consumer group with its own partitions, "
        "state and transactional id ('<transactional_id>-<n>'); above 1 a supervising process serves one /metrics "
        '(each sample labelled worker="<n>"), /healthz and /readyz, restarts a worker that dies and forwards '
        "SIGTERM. One process uses one core: set it to the cores the pod is given, at most the input partitions",
    )
    auto_discover_models: bool = Field(True, description="monitor models not named under [models]")
    batch_max_events: int = Field(
        5000, ge=1, description="messages taken from the consumer per batch"
    )
    batch_timeout_ms: int = Field(200, ge=1, description="longest wait for a batch to fill")
    model_batch_events: int = Field(
        5000,
        ge=1,
        description="a model's events are held across batches until it has this many (or until the next commit, "
        "or commit_interval_events are held in all), so that with many models on a topic each model's monitors "
        "run on many events at a time; decisions do not depend on it, only when alerts are published (1: at once)",
    )
    commit_interval_ms: int = Field(
        2000, ge=10, description="commit at least this often while events flow"
    )
    commit_interval_events: int = Field(
        50_000, ge=1, description="…or after this many events, whichever first"
    )
    alignment_idle_ms: int = Field(
        5000,
        ge=0,
        description="how long a partition's events wait for an input topic with nothing buffered but unread data "
        "on the broker (a caught-up topic is never waited for), before going on without it",
    )
    alignment_buffer_events: int = Field(
        20_000,
        ge=1,
        description="events buffered per input topic partition while aligning by event time; a full buffer pauses its fetching",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _models_within_cap(self) -> Settings:
        if len(self.models) > self.limits.max_models:
            raise ValueError(
                f"{len(self.models)} models configured but limits.max_models is {self.limits.max_models}"
            )
        return self

    @model_validator(mode="after")
    def _recovery_inside_the_drop(self) -> Settings:
        for where, model in [("retrain", ""), *((f"models.{m}.retrain", m) for m in self.models)]:
            retrain = self.retrain_for(model) if model else self.retrain
            if retrain.recovered_within >= retrain.performance_drop:
                raise ValueError(
                    f"{where}: recovered_within ({retrain.recovered_within}) must be below "
                    f"performance_drop ({retrain.performance_drop}): performance cannot be both "
                    "recovered and dropped"
                )
        return self

    @model_validator(mode="after")
    def _outputs_fit_the_producer(self) -> Settings:
        producer_limit = self.kafka.properties.get("message.max.bytes")
        if (
            producer_limit is not None
            and self.limits.max_output_bytes + OUTPUT_HEADROOM_BYTES > int(producer_limit)
        ):
            raise ValueError(
                f"limits.max_output_bytes ({self.limits.max_output_bytes}) plus {OUTPUT_HEADROOM_BYTES} bytes for headers "
                f"exceeds kafka.properties message.max.bytes ({producer_limit}): lower limits.max_output_bytes"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments > environment > TOML file > defaults.
        return (
            init_settings,
            env_settings,
            InitSettingsSource(settings_cls, init_kwargs=_config_file_data.get()),
        )

    def commit_overdue_s(self) -> float:
        """/readyz answers 503 once processed work has waited this long to be committed: a commit
        interval plus half the Kafka request timeout. A healthy checkpoint takes well under a
        second; one that has waited on a broker for half a request timeout is waiting on a broker
        that does not answer (hung, or a coordinator gone), which no client error reports before
        librdkafka gives the request up."""
        return self.commit_interval_ms / 1000 + self.kafka.request_timeout_s() / 2

    def state_topic(self) -> str:
        """The state topic: one per consumer group, like Kafka Streams' changelog topics."""
        return self.topics.state or f"{self.kafka.group_id}-state"

    def model_settings(self, model: str) -> ModelSettings:
        """Settings for one model; defaults for auto-discovered models."""
        return self.models.get(model) or DEFAULT_MODEL_SETTINGS

    def detection_for(self, model: str) -> DetectionSettings:
        """Detector settings for one model: its overrides over the global defaults."""
        overrides = self.model_settings(model).detection
        return self.detection.model_copy(update=overrides) if overrides else self.detection

    def retrain_for(self, model: str) -> RetrainSettings:
        """Retraining policy of one model: its overrides over the global [retrain]."""
        overrides = self.model_settings(model).retrain
        return self.retrain.model_copy(update=overrides) if overrides else self.retrain

    def fields_for(self, model: str) -> FieldMapping:
        overrides = self.model_settings(model).fields
        return self.fields.model_copy(update=overrides) if overrides else self.fields

    def redacted(self) -> dict[str, Any]:
        """The resolved configuration as plain data, secrets masked: safe to log or print."""
        return self.model_dump(mode="json")


DEFAULT_MODEL_SETTINGS = ModelSettings()


class ConfigError(ValueError):
    """Bad configuration: the message is one line saying what and where."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None


def _describe(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(root)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid setting {where} in {origin}: {message}{more}"


def _without_none(annotation: Any) -> Any:
    """`X` for `X | None`; any other annotation unchanged."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return annotation
    members = [member for member in get_args(annotation) if member is not type(None)]
    return members[0] if len(members) == 1 else annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _setting_at(parts: list[str]) -> tuple[Any, int]:
    """Follow a variable's name parts (split at `__`) from the root of the settings: the type
    reached, and how many parts name a setting (fewer than all: the variable is unknown).
    A dict-valued setting (kafka.properties, models, …) takes any key."""
    kind: Any = Settings
    for depth, part in enumerate(parts):
        if _is_model(kind) and part.lower() in kind.model_fields:
            kind = _without_none(kind.model_fields[part.lower()].annotation)
        elif get_origin(kind) is dict and part:
            kind = _without_none(get_args(kind)[1])
        else:
            return kind, depth
    return kind, len(parts)


def _variable_names(model: type[BaseModel]) -> list[str]:
    """Every setting under `model` as a variable spells it after the prefix."""
    names = []
    for name, field in model.model_fields.items():
        names.append(name.upper())
        kind = _without_none(field.annotation)
        if _is_model(kind):
            names += [f"{name.upper()}__{sub}" for sub in _variable_names(kind)]
    return names


def _close_setting(parts: list[str], model: type[BaseModel]) -> list[str] | None:
    """The name parts of a setting under `model` close to `parts`: the whole name if one is close
    (METRIC__PORT: METRICS__PORT), else the first part corrected and the rest kept (a dict's keys)."""
    close = difflib.get_close_matches("__".join(parts).upper(), _variable_names(model), n=1)
    if close:
        return close[0].split("__")
    close = difflib.get_close_matches(
        parts[0].upper(), [name.upper() for name in model.model_fields], n=1
    )
    return [*close, *parts[1:]] if close else None


def _variable_problem(name: str, value: str) -> str | None:
    """What is wrong with one STREAMDRIFT_ variable, in one line; None when it is a valid setting
    (its value is validated with the rest of the settings)."""
    parts = name[len(ENV_PREFIX) :].split("__")
    kind, known = _setting_at(parts)
    if known < len(parts):
        guess = _close_setting(parts[known:], kind) if _is_model(kind) else None
        hint = (
            f" (did you mean {name[: len(ENV_PREFIX)]}{'__'.join([*parts[:known], *guess])}?)"
            if guess
            else ""
        )
        return f"unknown setting in the {ENV_PREFIX} environment: {name} is not a setting{hint}"
    if _is_model(kind) or get_origin(kind) in (dict, list):
        try:
            json.loads(value)
        except json.JSONDecodeError as exc:
            setting = ".".join(parts).lower()
            return f"invalid setting {setting} in the {ENV_PREFIX} environment: {name} is not valid JSON ({exc})"
    return None


def _check_environment(environ: Mapping[str, str]) -> None:
    """Raise ConfigError for the first variable under the prefix that is not a valid setting
    (names match without regard to case, as pydantic-settings matches them)."""
    ours = [
        name
        for name in sorted(environ)
        if name.upper().startswith(ENV_PREFIX) and not NOT_SETTINGS.fullmatch(name.upper())
    ]
    problems = [
        problem for problem in (_variable_problem(name, environ[name]) for name in ours) if problem
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Resolve the configuration, raising ConfigError with one clear line when it is invalid."""
    path = config_file or os.environ.get(CONFIG_ENV_VAR) or None
    file_data = _read_toml(Path(path)) if path else {}
    _check_environment(os.environ)
    origin = f"{path} or the STREAMDRIFT_ environment" if path else "the STREAMDRIFT_ environment"
    token = _config_file_data.set(file_data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    finally:
        _config_file_data.reset(token)
