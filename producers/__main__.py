"""`python -m producers simulate|replay`: model traffic with injected drifts, to Kafka or a file.

Exit codes: 0 ok, 2 bad usage or configuration (one line saying what), 1 other failure.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from producers.cyclic import Cyclic
from producers.play import Played, play
from producers.replay import DATASETS, Replay
from producers.scenarios import QUALITIES, SCENARIOS, Deployment, Injection
from producers.simulate import Simulator
from producers.sinks import FileSink, KafkaSink, Sink, SinkError
from producers.stream import EventStream

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
KAFKA_RATE = 1000.0
INJECT_FORMAT = "SCENARIO[:TARGET]@START[,magnitude=M][,length=L]"
INJECT_PATTERN = re.compile(
    r"^(?P<scenario>\w+)(?::(?P<target>[^@]+))?@(?P<start>\d+)(?P<options>(?:,\w+=[^,]+)*)$"
)
DEPLOY_FORMAT = "VERSION@START[,share=S][,quality=same|fixed|worse][,magnitude=M]"
DEPLOY_PATTERN = re.compile(r"^(?P<version>[^@,]+)@(?P<start>\d+)(?P<options>(?:,\w+=[^,]+)*)$")


class UsageError(ValueError):
    """Bad command-line usage: the message is one line saying what."""


def parse_injection(spec: str) -> Injection:
    """An injection from `SCENARIO[:TARGET]@START[,magnitude=M][,length=L]`."""
    match = INJECT_PATTERN.match(spec.strip())
    if not match:
        raise UsageError(
            f"--inject {spec!r}: expected {INJECT_FORMAT}, e.g. mean_shift:amount@5000,magnitude=1.5"
        )
    options: dict[str, Any] = {}
    for option in filter(None, match["options"].split(",")):
        key, value = option.split("=", 1)
        try:
            options[key] = {"magnitude": float, "length": int}[key](value)
        except KeyError:
            raise UsageError(
                f"--inject {spec!r}: unknown option {key!r} (magnitude, length)"
            ) from None
        except ValueError:
            raise UsageError(f"--inject {spec!r}: {key} must be a number, not {value!r}") from None
    try:
        return Injection(match["scenario"], match["target"] or "", int(match["start"]), **options)
    except ValueError as exc:
        raise UsageError(f"--inject {spec!r}: {exc}") from None


def parse_deployment(spec: str) -> Deployment:
    """A deployment from `VERSION@START[,share=S][,quality=Q][,magnitude=M]`."""
    match = DEPLOY_PATTERN.match(spec.strip())
    if not match:
        raise UsageError(f"--deploy {spec!r}: expected {DEPLOY_FORMAT}, e.g. 2@20000,quality=fixed")
    options: dict[str, Any] = {}
    for option in filter(None, match["options"].split(",")):
        key, value = option.split("=", 1)
        try:
            options[key] = {"share": float, "magnitude": float, "quality": str}[key](value)
        except KeyError:
            raise UsageError(
                f"--deploy {spec!r}: unknown option {key!r} (share, quality, magnitude)"
            ) from None
        except ValueError:
            raise UsageError(f"--deploy {spec!r}: {key} must be a number, not {value!r}") from None
    try:
        return Deployment(match["version"], int(match["start"]), **options)
    except ValueError as exc:
        raise UsageError(f"--deploy {spec!r}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        stream = _stream(args)
        sink, rate = _sink(args, stream)
    except (UsageError, ValueError) as exc:
        print(f"producers: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SinkError as exc:
        print(f"producers: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return _run(args, stream, sink, rate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producers",
        description="Model traffic with injected drifts, to Kafka or a JSON-lines file.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    scenarios = "\n".join(
        f"  {name:<18} {s.monitor:<26} {s.effect}" for name, s in SCENARIOS.items()
    )
    inject_help = f"injections ({INJECT_FORMAT}); TARGET names a feature, or the class for prior_shift:\n  {'scenario':<18} {'expected monitor':<26} effect\n{scenarios}"
    simulate = commands.add_parser(
        "simulate",
        help="a simulated fraud model (features amount, utilization, age, income, country, device), "
        "or with --cycle a shop model that follows daily and weekly cycles",
        description="A simulated model's predictions and delayed labels, with injected drifts.",
        epilog=inject_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument(
        "--cycle",
        action="store_true",
        help="simulate a shop model whose traffic follows daily and weekly cycles instead (features "
        "amount, sessions, temperature, device, noise; the traffic rate, score and latency cycle too)",
    )
    simulate.add_argument(
        "--model",
        default="",
        help="model name, the Kafka key (default: fraud, or shop with --cycle)",
    )
    datasets = "\n".join(f"  {name:<10} {d.description}" for name, d in DATASETS.items())
    replay = commands.add_parser(
        "replay",
        help="real data bundled in the river package, scored by a frozen model",
        description="A dataset bundled in river, replayed in seeded shuffled passes and scored by a frozen logistic "
        "regression; no download.",
        epilog=f"datasets:\n{datasets}\n\n{inject_help}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("--dataset", required=True, choices=list(DATASETS), help="which dataset")
    replay.add_argument(
        "--model", default="", help="model name, the Kafka key (default: the dataset's name)"
    )
    for sub in (simulate, replay):
        _common_options(sub)
    return parser


def _common_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--events",
        type=_count,
        default=50_000,
        help="prediction events (0: until Ctrl-C; default: %(default)s)",
    )
    sub.add_argument(
        "--rate",
        type=_non_negative,
        help=f"events per second (0: unlimited; default: {KAFKA_RATE:.0f} to Kafka, unlimited to a file)",
    )
    sub.add_argument(
        "--seed",
        type=_count,
        default=0,
        help="random seed: same seed, same events (default: %(default)s)",
    )
    sub.add_argument(
        "--inject",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"a drift to inject: {INJECT_FORMAT} (repeatable)",
    )
    sub.add_argument(
        "--version", default="1", help="model version in the events (default: %(default)s)"
    )
    qualities = "; ".join(f"{name}: {effect}" for name, effect in QUALITIES.items())
    sub.add_argument(
        "--deploy",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"a new model version serving from an event on: {DEPLOY_FORMAT} (share below 1: a "
        f"canary beside the version before it; {qualities}) (repeatable)",
    )
    sub.add_argument(
        "--start-ms",
        type=_count,
        default=None,
        help="event time of the first event, epoch ms (default: a fixed instant)",
    )
    sub.add_argument(
        "--interval-ms",
        type=_count,
        help="event time between predictions, the mean one with simulate --cycle (default: 10; 3000, "
        "20 events a minute, with --cycle)",
    )
    sub.add_argument(
        "--label-delay-ms",
        type=_count,
        default=60_000,
        help="event time from a prediction to its label (default: %(default)s)",
    )
    sub.add_argument(
        "--label-coverage",
        type=_fraction,
        default=1.0,
        help="share of predictions that get a label (default: %(default)s)",
    )
    sub.add_argument(
        "--score-temperature",
        type=_positive,
        default=1.0,
        help="below 1 the model's scores are over-confident: log-odds / T (default: %(default)s)",
    )
    sub.add_argument(
        "--truth", metavar="FILE", help="write the ground truth (JSON) here instead of printing it"
    )
    out = sub.add_argument_group("destination (a file, else Kafka)")
    out.add_argument(
        "--out", metavar="FILE", help="write prediction events as JSON lines ('-': standard output)"
    )
    out.add_argument(
        "--labels-out", metavar="FILE", help="write label events as JSON lines (with --out)"
    )
    out.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        help="Kafka (default: $STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS)",
    )
    out.add_argument(
        "--config",
        metavar="FILE",
        help="streamdrift TOML settings: Kafka properties and topic names (default: $STREAMDRIFT_CONFIG)",
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {text}")
    return value


def _stream(args: argparse.Namespace) -> EventStream:
    options: dict[str, Any] = {
        "seed": args.seed,
        "injections": tuple(parse_injection(spec) for spec in args.inject),
        "version": args.version,
        "deployments": tuple(parse_deployment(spec) for spec in args.deploy),
        "label_delay_ms": args.label_delay_ms,
        "label_coverage": args.label_coverage,
        "score_temperature": args.score_temperature,
    }
    # options not given keep the stream's defaults
    if args.model:
        options["model"] = args.model
    for option in ("start_ms", "interval_ms"):
        if getattr(args, option) is not None:
            options[option] = getattr(args, option)
    if args.command == "replay":
        return Replay(dataset=args.dataset, **options)
    return Cyclic(**options) if args.cycle else Simulator(**options)


def _sink(args: argparse.Namespace, stream: EventStream) -> tuple[Sink, float]:
    """The destination, and the rate to play at."""
    if args.out:
        return FileSink(args.out, args.labels_out), args.rate or 0.0
    if args.labels_out:
        raise UsageError("--labels-out needs --out")
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from detector.kafka.topics import TopicError, ensure_topics
    from detector.settings import load_settings

    settings = load_settings(args.config)
    if args.bootstrap_servers:
        settings.kafka.bootstrap_servers = args.bootstrap_servers
    if not settings.kafka.bootstrap_servers:
        raise UsageError(
            "no destination: give --out FILE, or Kafka with --bootstrap-servers HOST:PORT or STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS"
        )
    topics = settings.topics
    sink = KafkaSink(settings.kafka.client_config(), topics.predictions, topics.labels)
    try:
        ensure_topics(
            AdminClient(settings.kafka.client_config()),
            settings,
            [topics.predictions, topics.labels],
            [],
        )
    except (TopicError, KafkaException) as exc:
        raise SinkError(f"topics at {settings.kafka.bootstrap_servers}: {exc}") from None
    return sink, KAFKA_RATE if args.rate is None else args.rate


def _run(args: argparse.Namespace, stream: EventStream, sink: Sink, rate: float) -> int:
    truth = orjson.dumps(
        {
            "model": stream.model,
            "seed": stream.seed,
            "injections": stream.ground_truth(),
            "deployments": stream.deployment_truth(),
        },
        option=orjson.OPT_INDENT_2,
    )
    if args.truth:
        with open(args.truth, "wb") as handle:
            handle.write(truth + b"\n")
    else:
        (sys.stderr if args.out == "-" else sys.stdout).write(f"ground truth: {truth.decode()}\n")
    stopping: list[int] = []
    previous = {
        signum: signal.signal(signum, lambda number, frame: stopping.append(number))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    progress = _Progress(sys.stderr, args.events)
    try:
        played = play([stream], sink, args.events, rate, progress, lambda: bool(stopping))
        sink.close()
    except SinkError as exc:
        print(f"\nproducers: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    progress(played, final=True)
    return EXIT_OK


class _Progress:
    """A status line on stderr: rewritten in place on a terminal, every few seconds otherwise."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out, self.total = out, total
        self.last = time.monotonic()
        self.interval = 0.5 if out.isatty() else 5.0

    def __call__(self, played: Played, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        of = f"/{self.total}" if self.total else ""
        rate = played.predictions / played.seconds if played.seconds else 0.0
        line = f"{played.predictions}{of} predictions, {played.labels} labels, {played.seconds:.1f}s ({rate:,.0f}/s)"
        end = "\n" if final or not self.out.isatty() else ""
        self.out.write(("\r\033[K" if self.out.isatty() else "") + line + end)
        self.out.flush()


if __name__ == "__main__":
    raise SystemExit(main())
