"""The `streamdrift` command: run, demo, broker, check-config, backtest, periods.

Exit codes: 0 ok, 2 bad configuration or usage (one line saying what and where), 1 other failure.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from detector import __version__
from detector.commands.backtest_arguments import add_arguments as add_backtest_arguments
from detector.commands.periods_arguments import add_arguments as add_periods_arguments
from detector.settings import ConfigError, Settings, load_settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("streamdrift")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"streamdrift: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamdrift",
        description="Watch ML model inputs, outputs and outcomes on Kafka for drift.",
    )
    parser.add_argument("--version", action="version", version=f"streamdrift {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, config: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        if config:
            sub.add_argument(
                "--config", metavar="FILE", help="TOML settings file (default: $STREAMDRIFT_CONFIG)"
            )
        return sub

    command("run", _run, "Run the detector as a consumer-group member until SIGTERM/SIGINT.")
    demo = command(
        "demo",
        _demo,
        "Run the main job on an embedded broker: simulated traffic with drifts, live alerts, summary.",
    )
    demo.add_argument(
        "--events",
        type=int,
        default=24_000,
        help="prediction events per model (default: %(default)s)",
    )
    demo.add_argument(
        "--rate",
        type=float,
        default=3000.0,
        help="events per second, all models together (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=7, help="simulator seed (default: %(default)s)")
    broker = command(
        "broker",
        _broker,
        "Run the embedded Kafka-compatible broker in the foreground.",
        config=False,
    )
    broker.add_argument(
        "--port",
        type=int,
        default=9092,
        help="loopback port (0 picks a free one; default: %(default)s)",
    )
    command(
        "check-config",
        _check_config,
        "Validate the configuration and print it resolved (secrets masked).",
    )
    backtest = command(
        "backtest",
        _backtest,
        "Replay history through a candidate config and report what would have fired.",
    )
    add_backtest_arguments(backtest)
    periods = command(
        "periods",
        _periods,
        "Compare two periods of history (this week against last month) monitor by monitor.",
    )
    add_periods_arguments(periods)
    return parser


def _configure_logging(settings: Settings | None = None, level: str | None = None) -> None:
    logging.basicConfig(
        level=level or (settings.log_level if settings else "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _on_signals(handler: Callable[[], None], doing: str) -> None:
    """Run `handler` on SIGTERM and SIGINT, logging what the process does about it (`doing`)."""

    def handle(signum: int, frame: Any) -> None:
        log.info("received %s: %s", signal.Signals(signum).name, doing)
        handler()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _settings(path: str | None) -> Settings:
    """The configuration, its librdkafka properties accepted by librdkafka itself (nothing connects)."""
    from detector.kafka.clients import check_client_configs

    settings = load_settings(path)
    check_client_configs(settings)
    return settings


def _run(args: argparse.Namespace) -> int:
    from detector.service.service import Service

    settings = _settings(args.config)
    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            "kafka.bootstrap_servers is empty: set STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS or [kafka] in the config file"
        )
    _configure_logging(settings)
    log.info("configuration: %s", orjson.dumps(settings.redacted()).decode())
    if settings.workers > 1:
        return _run_workers(settings)
    service = Service(settings)
    _on_signals(service.request_stop, "finishing the batch in hand, then committing and stopping")
    try:
        service.run()
    except Exception as exc:
        log.error("stopped on error: %s", exc, exc_info=log.isEnabledFor(logging.DEBUG))
        return EXIT_FAILURE
    return EXIT_OK


def _run_workers(settings: Settings) -> int:
    from detector.service.workers import Workers

    workers = Workers(settings)
    _on_signals(workers.request_stop, "asking every worker to finish its batch, commit and stop")
    return EXIT_OK if workers.run() else EXIT_FAILURE


def _demo(args: argparse.Namespace) -> int:
    from detector.commands.demo import run_demo

    settings = _settings(args.config)
    _configure_logging(level="WARNING")
    return run_demo(settings, events=args.events, rate=args.rate, seed=args.seed)


def _broker(args: argparse.Namespace) -> int:
    from detector.kafka.embedded import EmbeddedBroker

    _configure_logging()
    stopping: list[bool] = []
    # before anyone is told it runs
    _on_signals(lambda: stopping.append(True), "stopping the broker (its data is lost)")
    broker = EmbeddedBroker(port=args.port).start()
    print(f"embedded broker on {broker.bootstrap_servers}; in another shell:", flush=True)
    print(f"  export STREAMDRIFT_KAFKA__BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
    print("Ctrl-C stops it (all data is in memory and is lost).", flush=True)
    try:
        while not stopping and broker.process is not None and broker.process.poll() is None:
            time.sleep(0.2)
    finally:
        broker.stop()
    return EXIT_OK if stopping else EXIT_FAILURE


def _backtest(args: argparse.Namespace) -> int:
    from detector.commands.backtest import run

    _configure_logging(level="WARNING")
    return run(args)


def _periods(args: argparse.Namespace) -> int:
    from detector.commands.periods import run

    _configure_logging(level="WARNING")
    return run(args)


def _check_config(args: argparse.Namespace) -> int:
    from detector.core.monitors.model import model_thresholds

    settings = _settings(args.config)
    resolved = settings.redacted()
    derived = {}
    for model in ["(default)", *settings.models]:
        t = model_thresholds(
            settings.model_settings(model), settings.detection_for(model), settings.limits
        )
        derived[model] = {
            "detectors": t.detectors,
            "false_alarms_per_million_events_per_detector": t.per_detector_rate * 1e6,
            "page_hinkley_threshold": round(t.page_hinkley_threshold, 3),
            "adwin_delta": t.adwin_delta,
        }
    resolved["derived_thresholds"] = derived
    sys.stdout.write(orjson.dumps(resolved, option=orjson.OPT_INDENT_2).decode() + "\n")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
