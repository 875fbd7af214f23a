"""Configuration, declared once: environment (`STREAMDRIFT_…`, nested with `__`) over an
optional TOML file (`--config` or `STREAMDRIFT_CONFIG`) over these defaults.

The TOML file is strict (an unknown key is an error); the environment is lenient about
variables that do not start with the prefix.
"""

from __future__ import annotations

import os
import socket
import tomllib
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "STREAMDRIFT_"
CONFIG_ENV_VAR = "STREAMDRIFT_CONFIG"

# The parsed TOML file of the load_settings call in progress (a source below the environment).
_config_file_data: ContextVar[dict[str, Any]] = ContextVar("config_file_data", default={})


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
    group_id: str = Field("streamdrift", min_length=1, description="consumer group id; also names alert sources")
    transactional_id: str = Field(
        "", description="transactional.id under exactly_once; default '<group_id>-<hostname>'"
    )
    session_timeout_ms: int = Field(10_000, ge=1_000, description="consumer session timeout")
    max_poll_interval_ms: int = Field(300_000, ge=10_000)
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
        owned = {"group.id", "enable.auto.commit", "enable.auto.offset.store", "isolation.level", "transactional.id"}
        clash = sorted(owned & value.keys())
        if clash:
            raise ValueError(f"{', '.join(clash)} is set by streamdrift itself; use the dedicated setting")
        return value

    def client_config(self) -> dict[str, Any]:
        """Properties shared by every client: bootstrap servers, passthrough and secrets."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers, **self.properties}
        config.update({key: secret.get_secret_value() for key, secret in self.secrets.items()})
        return config

    def effective_transactional_id(self) -> str:
        return self.transactional_id or f"{self.group_id}-{socket.gethostname()}"


class TopicSettings(Strict):
    """Topic names, and whether the detector may create missing ones."""

    predictions: str = "predictions"
    features: str = "features"
    labels: str = "labels"
    alerts: str = "drift-alerts"
    dlq: str = "drift-dlq"
    state: str = Field("", description="compacted state topic; default '<kafka.group_id>-state'")
    create_missing: bool = Field(True, description="create missing topics at start (else a clear error)")
    partitions: int = Field(3, ge=1, description="partition count for topics the detector creates")
    replication_factor: int = Field(1, ge=1, description="replication for topics the detector creates")

    def inputs(self) -> list[str]:
        """The co-partitioned input topics, in the order the consumer subscribes to them."""
        return [self.predictions, self.features, self.labels]


class MetricsSettings(Strict):
    host: str = Field("0.0.0.0", description="bind address of /metrics, /healthz, /readyz")
    port: int = Field(9477, ge=0, le=65535, description="0 picks a free port and logs it")
    stall_after_s: float = Field(
        120.0, ge=10,
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

    warmup_events: int = Field(1000, ge=50, description="reference sample size; no alert before it is full")
    reference_bins: int = Field(128, ge=8, le=4096, description="quantile knots kept per numeric reference")
    max_categories: int = Field(64, ge=2, le=4096, description="categories kept per reference; the rest pool as 'other'")
    false_alarm_budget_per_million: float = Field(
        0.1, gt=0, description="expected false alarms per million events per model, all monitors together"
    )
    block_events: int = Field(16, ge=1, le=1024, description="ADWIN is fed means of blocks of this many events")
    adwin_max_buckets: int = Field(5, ge=2)
    page_hinkley_delta: float = Field(0.05, ge=0.01, le=0.2, description="Page-Hinkley slack on the PIT scale [0, 1]")
    page_hinkley_alpha: float = Field(1.0, gt=0, le=1, description="Page-Hinkley forgetting factor (thresholds are calibrated for 1)")
    cooldown_events: int = Field(2000, ge=0, description="after a resolve, no new alert on the monitor for this long")
    resolve_window_events: int = Field(1000, ge=50, description="window that must be back within the reference band")
    rebaseline_after_events: int = Field(
        20_000, ge=0, description="a drift still open after this many events re-learns its reference (0: never)"
    )
    disabled_monitors: list[str] = Field(default_factory=list, description="monitor names or prefixes to skip")


class ModelSettings(Strict):
    """What is known about one model. Models not listed are monitored with defaults."""

    owner: str = ""
    runbook_url: str = ""
    task: Literal["auto", "classification", "regression"] = "auto"
    features: list[str] | None = Field(None, description="features to monitor; default: all seen (capped)")
    ignore_features: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list, description="numeric-looking features to treat as categories")
    fields: dict[str, str] = Field(default_factory=dict, description="field mapping overrides for this model")
    detection: dict[str, Any] = Field(default_factory=dict, description="overrides of [detection]")
    label_ttl_seconds: float = Field(86_400.0, gt=0, description="how long a prediction waits for its label (event time)")
    label_wait_seconds: float = Field(300.0, ge=0, description="how long a label that came first waits for its prediction")
    label_maturity_seconds: float | None = Field(
        None, gt=0, description="age by which a prediction normally has its label; default: learned (3 × p95 of the first delays)"
    )
    label_sample_rate: float = Field(
        1.0, gt=0, le=1, description="share of predictions kept for the label join (by id hash): bounds memory at high traffic"
    )

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FieldMapping.model_fields) | ({"model"} & set(value)))
        if unknown:
            raise ValueError(f"cannot map {', '.join(unknown)} per model (the model field is global)")
        return value

    @field_validator("detection")
    @classmethod
    def _valid_detection(cls, value: dict[str, Any]) -> dict[str, Any]:
        DetectionSettings(**value)  # raises with the offending key
        return value


class StateSettings(Strict):
    """Checkpointing of detector state to `topics.state` (see detector/state.py for the format)."""

    enabled: bool = Field(True, description="checkpoint and restore detector state; off: every start re-learns")
    signing_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key; when set, state records without a valid signature are ignored"
    )


FaultPoint = Literal["after_alerts", "before_commit", "after_commit", "in_revoke"]


class FaultSettings(Strict):
    """Fault injection for crash tests only: the process exits abruptly (no cleanup) at a point."""

    point: FaultPoint | None = Field(None, description="where to exit; unset in production")
    after: int = Field(1, ge=1, description="exit the N-th time the point is reached")


class LimitSettings(Strict):
    """Caps that bound memory and metric cardinality; overflow is counted, never a crash."""

    max_models: int = Field(1000, ge=1, description="models monitored per process, auto-discovered ones included")
    max_features_per_model: int = Field(100, ge=1)
    max_message_bytes: int = Field(1_000_000, ge=1024, description="larger messages are dead-lettered")
    max_model_name_length: int = Field(200, ge=1, le=10_000)
    max_category_length: int = Field(200, ge=1, description="longer categorical values are truncated")
    max_pending_labels: int = Field(
        50_000, ge=1, description="predictions waiting for a label, per model (about 130 bytes each); the oldest go first"
    )
    max_pending_labels_total: int = Field(
        500_000, ge=1, description="predictions waiting for a label in the whole process; beyond it new ones are not kept"
    )
    pending_labels_before_first: int = Field(
        1000, ge=0,
        description="predictions a model keeps waiting before its first label ever arrives (about 130 bytes each): "
        "its first ones, so that a first label hours late still joins; later ones are not kept (nor counted) until a label comes",
    )
    max_waiting_labels: int = Field(10_000, ge=1, description="labels waiting for their prediction, per model")
    max_recall_classes: int = Field(10, ge=0, description="classes with their own recall monitor, per model")


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
    limits: LimitSettings = Field(default_factory=LimitSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    fault_injection: FaultSettings = Field(default_factory=FaultSettings)
    models: dict[str, ModelSettings] = Field(default_factory=dict)
    processing_guarantee: ProcessingGuarantee = ProcessingGuarantee.exactly_once
    auto_discover_models: bool = Field(True, description="monitor models not named under [models]")
    batch_max_events: int = Field(5000, ge=1, description="messages taken from the consumer per batch")
    batch_timeout_ms: int = Field(200, ge=1, description="longest wait for a batch to fill")
    commit_interval_ms: int = Field(2000, ge=10, description="commit at least this often while events flow")
    commit_interval_events: int = Field(50_000, ge=1, description="…or after this many events, whichever first")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _models_within_cap(self) -> "Settings":
        if len(self.models) > self.limits.max_models:
            raise ValueError(f"{len(self.models)} models configured but limits.max_models is {self.limits.max_models}")
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
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=_config_file_data.get())

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


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Resolve the configuration, raising ConfigError with one clear line when it is invalid."""
    path = config_file or os.environ.get(CONFIG_ENV_VAR) or None
    file_data = _read_toml(Path(path)) if path else {}
    origin = f"{path} or the STREAMDRIFT_ environment" if path else "the STREAMDRIFT_ environment"
    token = _config_file_data.set(file_data)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origin)) from None
    finally:
        _config_file_data.reset(token)
