"""`python -m bench SUB-COMMAND [--quick] …`: run one benchmark, print progress on
stderr and its figures as Markdown on stdout (headed by the command, date and machine)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench.report import header


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    body = args.handler(args)
    print(header(command) + "\n" + body, flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = parser.add_subparsers(title="benchmarks")

    def command(
        name: str, help: str, handler: Callable[[argparse.Namespace], str]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument(
            "--quick", action="store_true", help="tiny sizes (seconds): checks that it runs"
        )
        sub.set_defaults(handler=handler)
        return sub

    throughput = command(
        "throughput",
        "events/s of the core, and end to end beside a consume+parse baseline on each broker",
        _throughput,
    )
    throughput.add_argument(
        "--events", type=int, default=300_000, help="events in the workload (default 300,000)"
    )
    throughput.add_argument(
        "--core-only", action="store_true", help="only the in-process core (for profiling)"
    )
    throughput.add_argument(
        "--workload",
        nargs="+",
        choices=("plain", "ids", "labels"),
        default=["plain", "ids", "labels"],
        help="plain: no ids; ids: every prediction has an id, no labels; labels: ids, and 30%% "
        "of the predictions get a label later (default: all three)",
    )
    throughput.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also end to end over several partitions with one process, this many workers and "
        "this many replicas (1: skip; default 2)",
    )
    throughput.add_argument(
        "--broker",
        choices=("tansu", "kafka", "both"),
        default="both",
        help="end to end on the embedded Tansu, on Apache Kafka (jars from `make kafka`), or both",
    )

    ab = command(
        "ab",
        "A/B of the core: this tree's Pipeline.process against another tree's, batches in turn",
        _ab,
    )
    ab.add_argument("base", help="the other tree (a checkout holding detector/), side A")
    ab.add_argument("--events", type=int, default=100_000, help="predictions (default 100,000)")
    ab.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    ab.add_argument(
        "--workload",
        choices=("plain", "ids", "labels", "shift"),
        default="plain",
        help="throughput's workloads, or shift: ids, labels and a drift, for alerts to compare",
    )
    ab.add_argument(
        "--models",
        type=int,
        default=1,
        help="above 1: instead of --workload, bench models' workload of this many interleaved "
        "models, held (--events: events timed, after every model's warm-up)",
    )

    models = command(
        "models",
        "many models on one topic: the core's events/s over 1, 20, 200 and 1,000 interleaved models",
        _models,
    )
    models.add_argument(
        "--events",
        type=int,
        default=1_000_000,
        help="events timed per number of models, after every model's warm-up (default 1,000,000)",
    )
    models.add_argument(
        "--models",
        type=int,
        nargs="+",
        default=[1, 20, 200, 1000],
        help="numbers of models (default 1 20 200 1000; the first is the ratios' base)",
    )
    models.add_argument(
        "--commit-interval-events",
        type=int,
        nargs="+",
        default=[],
        help="bounds on the events held in all (the service flushes them at every commit): each "
        "configuration at each (default: the configured commit_interval_events)",
    )
    models.add_argument(
        "--unheld",
        action="store_true",
        help="also each number of models without holding events across batches (as before)",
    )
    models.add_argument(
        "--backtest",
        action="store_true",
        help="also the whole `streamdrift backtest --file` command over each number of models' "
        "events (with ids)",
    )

    decode = command(
        "decode", "msgspec against orjson: decoding and validating the workload's messages", _decode
    )
    decode.add_argument(
        "--events", type=int, default=100_000, help="messages decoded (default 100,000)"
    )

    memory = command(
        "memory", "resident size per monitored model, growth with models and features", _memory
    )
    memory.add_argument(
        "--events-per-model",
        type=int,
        default=3000,
        help="events fed to each model (default 3,000)",
    )
    memory.add_argument(
        "--allocated",
        action="store_true",
        help="also the bytes allocated per model, traced in a second process (several times slower)",
    )

    calibrate = command(
        "calibrate", "re-fit the detectors' false-alarm models; check the model budget", _calibrate
    )
    calibrate.add_argument("--seed", type=int, default=1)

    quality = command(
        "quality", "detection rate, delay and false alarms per distribution family", _quality
    )
    quality.add_argument("--seed", type=int, default=1)
    quality.add_argument(
        "--warmup-events",
        type=int,
        help="detection.warmup_events instead of the default (low-volume models); the stationary "
        "values are then split over 100 streams, each with its own reference",
    )

    backtest = command(
        "backtest",
        "backtest speed against the core's in-process speed, on one simulated history",
        _backtest,
    )
    backtest.add_argument(
        "--events", type=int, default=1_000_000, help="simulated predictions (default 1,000,000)"
    )

    seasonal = command(
        "seasonal",
        "false alarms and in-cycle shift delays of a model whose signals follow daily and weekly cycles",
        _seasonal,
    )
    seasonal.add_argument(
        "--days", type=float, default=21.0, help="days of event time (default 21)"
    )
    seasonal.add_argument(
        "--rate", type=float, default=20.0, help="mean events a minute (default 20)"
    )
    seasonal.add_argument(
        "--shift-day", type=float, default=15.0, help="day the shifted history changes (default 15)"
    )
    seasonal.add_argument("--seed", type=int, default=1)
    seasonal.add_argument(
        "--fast-rate",
        type=float,
        default=100.0,
        help="events a second of the fast scenario (10 days; default 100; 0 skips it)",
    )
    seasonal.add_argument(
        "--cost",
        action="store_true",
        help="only the core's throughput with and without seasonal adjustment, A/B in one process",
    )

    peers = command("peers", "a batch peer (NannyML) beside streamdrift on the same data", _peers)
    peers.add_argument(
        "--venv",
        default=".bench-venv",
        help="the peers' separate virtual environment (created if missing)",
    )
    peers.add_argument(
        "--no-install", action="store_true", help="do not create or install the peers' environment"
    )
    estimated = command(
        "estimated",
        "estimated accuracy before labels of an over-confident model: streamdrift beside NannyML's CBPE",
        _estimated,
    )
    estimated.add_argument(
        "--venv",
        default=".bench-venv",
        help="the peers' separate virtual environment (created if missing)",
    )
    estimated.add_argument(
        "--no-install", action="store_true", help="do not create or install the peers' environment"
    )
    return parser


def _throughput(args: argparse.Namespace) -> str:
    from bench import throughput

    brokers = ["tansu", "kafka"] if args.broker == "both" else [args.broker]
    events = 20_000 if args.quick else args.events
    report = throughput.run(events, args.core_only, args.workload, brokers)
    if args.workers < 2 or args.core_only:
        return report
    from bench import scaleout

    return report + "\n" + scaleout.run(events, args.workload, brokers, args.workers) + "\n"


def _ab(args: argparse.Namespace) -> str:
    from pathlib import Path

    from bench import ab

    events, rounds = (20_000, 1) if args.quick else (args.events, args.rounds)
    return ab.run(Path(args.base), events, rounds, args.workload, args.models)


def _models(args: argparse.Namespace) -> str:
    from bench import models

    intervals = tuple(args.commit_interval_events)
    events, counts = (20_000, (1, 20)) if args.quick else (args.events, tuple(args.models))
    report = models.run(events, counts, intervals, args.unheld)
    if args.backtest:
        report += "\n" + models.run_backtest(events, counts)
    return report


def _decode(args: argparse.Namespace) -> str:
    from bench import decode

    return decode.run(2_000 if args.quick else args.events)


def _memory(args: argparse.Namespace) -> str:
    from bench import memory

    return memory.run(args.quick, 1200 if args.quick else args.events_per_model, args.allocated)


def _calibrate(args: argparse.Namespace) -> str:
    from bench import calibrate

    return calibrate.run(args.quick, args.seed)


def _quality(args: argparse.Namespace) -> str:
    from bench import quality

    return quality.run(args.quick, args.seed, args.warmup_events)


def _backtest(args: argparse.Namespace) -> str:
    from bench import backtest

    return backtest.run(20_000 if args.quick else args.events)


def _seasonal(args: argparse.Namespace) -> str:
    from bench import seasonal

    if args.cost:
        return seasonal.cost()
    return seasonal.run(args.quick, args.days, args.rate, args.shift_day, args.seed, args.fast_rate)


def _peers(args: argparse.Namespace) -> str:
    from bench import peers

    return peers.run(args.quick, args.venv, install=not args.no_install)


def _estimated(args: argparse.Namespace) -> str:
    from bench import estimated

    return estimated.run(args.quick, args.venv, install=not args.no_install)


if __name__ == "__main__":
    raise SystemExit(main())
