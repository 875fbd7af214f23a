"""`streamdrift backtest`: options → history → replay → score → text/JSON, alerts, report, PNGs.

Usage and configuration errors raise ConfigError (exit 2, one line), before any replay;
history that cannot be read and outputs that cannot be written exit 1 with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from detector.backtest.files import FileSource
from detector.backtest.replay import Replayed, Run, replay
from detector.backtest.score import Change, TruthError, changes_from_truth, score
from detector.backtest.sources import Source
from detector.backtest.summary import Results, to_json, to_text
from detector.backtest.topics import Range, TopicSource
from detector.commands.history import (
    EXIT_FAILURE,
    EXIT_OK,
    Unreadable,
    cannot_write,
    read_with_progress,
)
from detector.kafka.clients import check_client_configs
from detector.settings import ConfigError, Settings, load_settings


def run(args: argparse.Namespace) -> int:
    settings = configured(args.config, args.bootstrap_servers)
    runs = _runs(args, settings)
    changes = _changes(args.truth)
    if args.report or args.png:
        from detector.backtest.plots import require_matplotlib

        require_matplotlib()
    source = _source(args, settings)

    try:
        replayed = read_with_progress(
            "backtest", "backtest", lambda progress: replay(source, runs, progress), _messages
        )
    except Unreadable:
        return EXIT_FAILURE
    scores = {
        run.name: score(changes, run.detections(), replayed.timeline.predictions, args.max_delay)
        if changes is not None
        else None
        for run in runs
    }
    results = Results(replayed, source.description, scores)
    try:
        _write_outputs(args, results, changes or [])
    except OSError as exc:
        return cannot_write("backtest", exc)
    sys.stdout.write(
        orjson.dumps(
            to_json(results), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
        ).decode()
        + "\n"
        if args.json
        else to_text(results)
    )
    return EXIT_OK


def _messages(replayed: Replayed) -> int:
    return replayed.messages


def configured(config: str | None, bootstrap_servers: str | None) -> Settings:
    """The configuration (its client properties checked), on the `bootstrap_servers` cluster if
    given."""
    settings = load_settings(config)
    check_client_configs(settings)
    if not bootstrap_servers:
        return settings
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": bootstrap_servers})
    return settings.model_copy(update={"kafka": kafka})


def _runs(args: argparse.Namespace, settings: Settings) -> list[Run]:
    runs = [Run("A", args.config, settings)]
    if args.compare:
        # The same history for both: it is read with the topic names (and cluster) of --config.
        runs.append(
            Run(
                "B",
                args.compare,
                load_settings(args.compare).model_copy(update={"topics": settings.topics}),
            )
        )
    return runs


def _changes(paths: list[str]) -> list[Change] | None:
    if not paths:
        return None
    changes: list[Change] = []
    for path in paths:
        try:
            changes += changes_from_truth(orjson.loads(Path(path).read_bytes()))
        except OSError as exc:
            raise ConfigError(f"--truth {path}: {exc.strerror}") from None
        except (orjson.JSONDecodeError, TruthError) as exc:
            raise ConfigError(f"--truth {path}: {exc}") from None
    return changes


def _source(args: argparse.Namespace, settings: Settings) -> Source:
    topic_options = {
        "--from-offset": args.from_offset,
        "--to-offset": args.to_offset,
        "--from-time": args.from_time,
        "--to-time": args.to_time,
        "--partitions": args.partitions,
        "--bootstrap-servers": args.bootstrap_servers,
    }
    if args.file:
        given = [name for name, value in topic_options.items() if value is not None]
        if given:
            raise ConfigError(f"{given[0]} applies to topics, not to --file")
        return FileSource(
            settings, Path(args.file), Path(args.labels_file) if args.labels_file else None
        )
    if args.labels_file:
        raise ConfigError("--labels-file needs --file (topics bring their own labels topic)")
    if (
        args.from_offset is not None
        and args.to_offset is not None
        and args.to_offset <= args.from_offset
    ):
        raise ConfigError(
            f"--to-offset {args.to_offset} must be after --from-offset {args.from_offset}"
        )
    if args.from_time is not None and args.to_time is not None and args.to_time <= args.from_time:
        raise ConfigError("--to-time must be after --from-time")
    return TopicSource(
        settings,
        Range(args.from_offset, args.to_offset, args.from_time, args.to_time, args.partitions),
    )


def _write_outputs(args: argparse.Namespace, results: Results, changes: list[Change]) -> None:
    runs = results.replayed.runs
    if args.alerts_out:
        for run, path in zip(runs, _alert_paths(Path(args.alerts_out), len(runs))):
            events = [f.alert.cloudevent(run.group) for f in run.fired] + [
                p.event.cloudevent(run.group) for p in run.placed
            ]
            path.write_bytes(
                b"".join(
                    orjson.dumps(
                        event, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
                    )
                    for event in events
                )
            )
            _note(
                f"{len(run.fired)} alerts and {len(run.placed)} events about models of {run.name} "
                f"written to {path}"
            )
    if not (args.report or args.png):
        return
    from detector.backtest.report import draw, file_name, html_report

    pictures = draw(results, changes)
    if args.png:
        folder = Path(args.png)
        folder.mkdir(parents=True, exist_ok=True)
        for picture, png in pictures.items():
            (folder / file_name(picture)).write_bytes(png)
        _note(f"{len(pictures)} pictures written to {folder}")
    if args.report:
        Path(args.report).write_text(html_report(results, pictures), encoding="utf-8")
        _note(f"report written to {args.report}")


def _alert_paths(path: Path, count: int) -> list[Path]:
    """FILE for the first run; FILE-B (before the suffix) for the compared one."""
    return [
        path,
        *(path.with_name(f"{path.stem}-{chr(ord('A') + i)}{path.suffix}") for i in range(1, count)),
    ]


def _note(text: Any) -> None:
    print(text, file=sys.stderr)
