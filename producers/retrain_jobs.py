"""`python -m producers.retrain_jobs`: an example downstream consumer of the detector's alerts
topic that turns each `io.streamdrift.retrain.recommended` into a Kubernetes Job manifest, as a
team would wire retraining recommendations into its training pipeline.

It reads the alerts topic in its own consumer group, keeps the retraining recommendations,
and writes one Job manifest (JSON, which `kubectl apply -f` takes as it takes YAML) per
recommendation into `--out`, or prints them (`--dry-run`). The Job runs `--image` with the data
to retrain on as arguments and environment: model, version, reason, topic, partitions with their
offset ranges, time range and the newest offset of every input topic (`retrain_data`).

Deduplication: the job's name and file are derived from the event's id, which the detector
derives deterministically from its input, so a replayed or re-read recommendation names the same
Job (Kubernetes refuses a second Job of one name) and overwrites the same file; ids seen in this
run are skipped. Offsets are committed after the manifests are written: a crash in between
writes the same files again.

Exit codes: 0 ok, 2 bad usage, 1 other failure (Kafka).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message

RECOMMENDED = "io.streamdrift.retrain.recommended"  # the detector's event type (its contract)
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
NAME_LIMIT = 63  # a Job's name is a DNS label (its pods' names add a suffix to it)
LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


def job_name(event: dict[str, Any]) -> str:
    """`retrain-<model>-<12 hex of the event id>`: a valid DNS label, the same for the same event."""
    model = re.sub(r"[^a-z0-9-]+", "-", str(event["data"]["model"]).lower()).strip("-") or "model"
    digest = hashlib.sha256(str(event["id"]).encode()).hexdigest()[:12]
    return f"retrain-{model[: NAME_LIMIT - len('retrain--') - 12].rstrip('-')}-{digest}"


def _label(value: Any) -> str:
    """A Kubernetes label value: at most 63 characters of [A-Za-z0-9._-], alphanumeric at the ends."""
    return LABEL_VALUE.sub("-", "" if value is None else str(value))[:63].strip("-._")


def job_manifest(
    event: dict[str, Any],
    image: str,
    namespace: str | None = None,
    command: Sequence[str] = (),
) -> dict[str, Any]:
    """The batch/v1 Job that retrains the model of a `retrain.recommended` CloudEvent on its
    `retrain_data`."""
    data = event["data"]
    retrain = data["retrain_data"]
    spans = retrain["partitions"]
    times = retrain["time_range"]
    arguments = [
        "--model",
        str(data["model"]),
        "--topic",
        str(retrain["topic"]),
        *(
            item
            for span in spans
            for item in (
                "--partition-offsets",
                f"{span['partition']}:{span['from_offset']}-{span['to_offset']}",
            )
        ),
        "--from-time",
        str(times["from"]),
        "--to-time",
        str(times["to"]),
    ]
    environment = {
        "RETRAIN_EVENT_ID": str(event["id"]),
        "RETRAIN_MODEL": str(data["model"]),
        "RETRAIN_VERSION": "" if data["version"] is None else str(data["version"]),
        "RETRAIN_REASON": str(data["reason"]),
        "RETRAIN_TOPIC": str(retrain["topic"]),
        "RETRAIN_PARTITIONS": orjson.dumps(spans).decode(),
        "RETRAIN_FROM_TIME": str(times["from"]),
        "RETRAIN_TO_TIME": str(times["to"]),
        "RETRAIN_END_OFFSETS": orjson.dumps(retrain["end_offsets"]).decode(),
    }
    container: dict[str, Any] = {
        "name": "retrain",
        "image": image,
        "args": arguments,
        "env": [{"name": name, "value": value} for name, value in environment.items()],
    }
    if command:
        container["command"] = list(command)
    metadata: dict[str, Any] = {
        "name": job_name(event),
        "labels": {
            "app.kubernetes.io/name": "retrain",
            "app.kubernetes.io/managed-by": "streamdrift-retrain-jobs",
            "streamdrift.io/model": _label(data["model"]),
            "streamdrift.io/reason": _label(data["reason"]),
        },
        "annotations": {
            "streamdrift.io/event-id": str(event["id"]),
            "streamdrift.io/event-time": str(event["time"]),
            "streamdrift.io/version": "" if data["version"] is None else str(data["version"]),
            "streamdrift.io/owner": str(data.get("owner", "")),
            "streamdrift.io/runbook-url": str(data.get("runbook_url", "")),
        },
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 7 * 86_400,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "retrain"}},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }


def recommendation(message: Message) -> dict[str, Any] | None:
    """The CloudEvent of a message if it is a retraining recommendation (else None: other event
    types, and anything that is not a CloudEvent, are not this consumer's business)."""
    try:
        event = orjson.loads(message.value() or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") != RECOMMENDED:
        return None
    return event


class Jobs:
    """Where manifests go: files in a folder (`out`), or standard output (`out` None)."""

    def __init__(
        self, image: str, namespace: str | None, command: Sequence[str], out: Path | None
    ) -> None:
        self.image, self.namespace, self.command, self.out = image, namespace, command, out
        self.seen: set[str] = set()
        self.written = 0

    def take(self, event: dict[str, Any]) -> None:
        if event["id"] in self.seen:
            return
        self.seen.add(event["id"])
        manifest = job_manifest(event, self.image, self.namespace, self.command)
        text = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
        if self.out is None:
            sys.stdout.write(text.decode())
            sys.stdout.flush()
        else:
            path = self.out / f"{manifest['metadata']['name']}.json"
            partial = path.with_suffix(".json.partial")
            partial.write_bytes(text)
            partial.replace(path)  # a half-written manifest is never applied
        self.written += 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producers.retrain_jobs",
        description="Turn the detector's retraining recommendations into Kubernetes Job manifests.",
    )
    parser.add_argument("--bootstrap-servers", required=True, help="Kafka host:port list")
    parser.add_argument("--topic", default="drift-alerts", help="the alerts topic")
    parser.add_argument(
        "--group", default="streamdrift-retrain-jobs", help="consumer group (offsets committed)"
    )
    parser.add_argument("--image", default="registry.example.com/retrain:latest")
    parser.add_argument("--namespace", default=None, help="namespace of the Jobs (default: none)")
    parser.add_argument(
        "--command",
        nargs="+",
        default=(),
        help="the container's command (default: the image's entrypoint); the data to retrain on "
        "comes as arguments and RETRAIN_* environment",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="folder to write one <job name>.json into per job")
    where.add_argument(
        "--dry-run",
        action="store_true",
        help="print the manifests instead; offsets are not committed",
    )
    parser.add_argument(
        "--idle-s",
        type=float,
        default=0.0,
        help="stop once nothing new came for this long, counted from the group's assignment "
        "(default 0: run until SIGTERM or SIGINT)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    if args.out is not None and not args.out.is_dir():
        print(f"retrain_jobs: --out {args.out} is not a folder", file=sys.stderr)
        return EXIT_USAGE
    jobs = Jobs(args.image, args.namespace, args.command, args.out)
    try:
        return _consume(args, jobs)
    except KafkaException as exc:
        print(f"retrain_jobs: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _consume(args: argparse.Namespace, jobs: Jobs) -> int:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # the detector publishes in transactions (exactly_once): aborted ones are not alerts
            "isolation.level": "read_committed",
        }
    )
    last_new: float | None = None  # idle is counted from the group's assignment on

    def assigned(*_: object) -> None:
        nonlocal last_new
        last_new = time.monotonic()

    try:
        consumer.subscribe([args.topic], on_assign=assigned)
        while not stopping:
            messages = consumer.consume(500, 0.5)
            fresh = [m for m in messages if m.error() is None]
            for message in messages:
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
            for message in fresh:
                event = recommendation(message)
                if event is not None:
                    jobs.take(event)
            if fresh:
                last_new = time.monotonic()
                if not args.dry_run:
                    consumer.commit(asynchronous=False)
            elif args.idle_s and last_new is not None and time.monotonic() - last_new > args.idle_s:
                break
    finally:
        consumer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"retrain_jobs: {jobs.written} job manifests", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
