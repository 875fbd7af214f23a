"""`python -m producers.retrain_jobs`: retraining recommendations from the alerts topic become
Kubernetes Job manifests carrying the data to retrain on, one per event id."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.core.alerts import DEPLOYED, RECOMMENDED
from detector.core.pipeline import Pipeline
from detector.settings import ModelSettings, load_settings
from producers.retrain_jobs import job_manifest, job_name, main, recommendation
from producers.scenarios import Deployment, Injection
from tests.fakes import FakeMessage
from tests.kafka_helpers import KafkaNames, produce
from tests.simulated import run, traffic

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@pytest.fixture(scope="module")
def published() -> list[bytes]:
    """What the detector publishes for a concept drift and a retrained version: alerts, a
    recommendation, the deployment and the outcome, as encoded for the alerts topic."""
    owned = ModelSettings(owner="team-risk", runbook_url="https://runbooks/fraud")
    settings = load_settings(None).model_copy(update={"models": {"fraud": owned}})
    result = run(
        Pipeline(settings),
        traffic(
            24_000,
            (Deployment("2", 16_000, quality="fixed"),),
            (Injection("concept_drift", "", start=6000, magnitude=0.4),),
        ),
    )
    types = [e.type for e in result.model_events]
    assert RECOMMENDED in types and DEPLOYED in types
    return [a.encode("g") for a in result.alerts] + [e.encode("g") for e in result.model_events]


def recommended(published: list[bytes]) -> dict[str, Any]:
    (event,) = [e for e in map(orjson.loads, published) if e["type"] == RECOMMENDED]
    return event


def test_a_recommendation_becomes_a_job_with_the_data_to_retrain_on(published: list[bytes]) -> None:
    event = recommended(published)
    retrain = event["data"]["retrain_data"]
    manifest = job_manifest(event, "registry/retrain:7", "ml", ["python", "-m", "train"])

    assert manifest["apiVersion"] == "batch/v1" and manifest["kind"] == "Job"
    metadata = manifest["metadata"]
    assert metadata["namespace"] == "ml" and DNS_LABEL.fullmatch(metadata["name"])
    assert metadata["annotations"]["streamdrift.io/event-id"] == event["id"]
    assert metadata["annotations"]["streamdrift.io/owner"] == "team-risk"
    assert metadata["labels"]["streamdrift.io/reason"] == "performance_drop"
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry/retrain:7"
    assert container["command"] == ["python", "-m", "train"]
    (span,) = retrain["partitions"]
    assert container["args"] == [
        "--model",
        "fraud",
        "--topic",
        retrain["topic"],
        "--partition-offsets",
        f"{span['partition']}:{span['from_offset']}-{span['to_offset']}",
        "--from-time",
        retrain["time_range"]["from"],
        "--to-time",
        retrain["time_range"]["to"],
    ]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["RETRAIN_VERSION"] == "1" and env["RETRAIN_REASON"] == "performance_drop"
    assert orjson.loads(env["RETRAIN_PARTITIONS"]) == retrain["partitions"]
    assert orjson.loads(env["RETRAIN_END_OFFSETS"]) == retrain["end_offsets"]
    assert manifest["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_a_job_is_named_by_its_event_id(published: list[bytes]) -> None:
    event = recommended(published)
    assert job_name(event) == job_name(orjson.loads(orjson.dumps(event)))
    assert job_name({**event, "id": "another"}) != job_name(event)
    odd = {**event, "data": {**event["data"], "model": "Fraud/EU_" + "x" * 100}}
    assert DNS_LABEL.fullmatch(job_name(odd)) and len(job_name(odd)) <= 63


def test_only_retraining_recommendations_are_taken(published: list[bytes]) -> None:
    taken = [recommendation(FakeMessage("a", 0, i, v)) for i, v in enumerate(published)]
    assert [e["id"] for e in taken if e is not None] == [recommended(published)["id"]]
    assert recommendation(FakeMessage("a", 0, 0, b"not json")) is None
    assert recommendation(FakeMessage("a", 0, 0, None)) is None


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert main(["--bootstrap-servers", "x:1"]) == 2  # neither --out nor --dry-run
    assert main(["--bootstrap-servers", "x:1", "--out", str(tmp_path / "none")]) == 2


@pytest.mark.broker
def test_the_consumer_writes_one_manifest_per_recommendation_and_commits(
    topics: KafkaNames,
    published: list[bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The recommendation twice (a replay), among the other events and a stray message.
    event = recommended(published)
    produce(topics.bootstrap, topics.alerts, [*published, orjson.dumps(event), b"{"], key=b"fraud")
    common = ["--bootstrap-servers", topics.bootstrap, "--topic", topics.alerts]

    code = main([*common, "--group", topics.group, "--out", str(tmp_path), "--idle-s", "3"])

    assert code == 0
    (written,) = tmp_path.iterdir()
    assert written.name == f"{job_name(event)}.json"
    assert orjson.loads(written.read_bytes()) == job_manifest(
        event, "registry.example.com/retrain:latest"
    )
    written.unlink()
    # the group's offsets were committed: a second run finds nothing new
    assert main([*common, "--group", topics.group, "--out", str(tmp_path), "--idle-s", "3"]) == 0
    assert list(tmp_path.iterdir()) == []
    # a dry run of another group prints the manifest
    capsys.readouterr()
    assert main([*common, "--group", topics.group + "-dry", "--dry-run", "--idle-s", "3"]) == 0
    assert orjson.loads(capsys.readouterr().out)["metadata"]["name"] == job_name(event)
