"""The layout's import direction (docs/layout.md): core ← kafka, http ← service; core,
kafka ← backtest; everything ← commands. Every module under detector/ and bench/ is parsed
with `ast` (imports inside functions count too) and each import checked against its layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The detector packages each layer may import, besides itself, and why.
ALLOWED: dict[str, tuple[frozenset[str], str]] = {
    "settings": (frozenset(), "configuration is declared once and imports nothing of the detector"),
    "core": (frozenset({"settings"}), "core is the pure logic: no Kafka, no HTTP, no files"),
    "kafka": (
        frozenset({"core", "settings"}),
        "an edge sees the core and the settings, not the other edges or their users",
    ),
    "http": (
        frozenset({"core", "settings"}),
        "an edge sees the core and the settings, not the other edges or their users",
    ),
    "service": (
        frozenset({"core", "settings", "kafka", "http"}),
        "the live process composes the core with the edges",
    ),
    "backtest": (
        frozenset({"core", "settings", "kafka"}),
        "the backtest replays through the core and reads Kafka; commands use it, not the reverse",
    ),
    "commands": (
        frozenset({"core", "settings", "kafka", "http", "service", "backtest"}),
        "commands may use anything in detector",
    ),
    "__main__": (frozenset({"commands"}), "`python -m detector` is the `streamdrift` command"),
}
# The edges' libraries, which the pure core must not touch.
EDGE_LIBRARIES = ("confluent_kafka", "prometheus_client", "http.server")


def layer_of(module: str) -> str | None:
    """The layer of a detector module (`detector.core.pipeline` → core); None if it is in none.
    The package itself (`detector`, which holds only `__version__`) is the root, open to all."""
    parts = module.split(".")
    if parts[0] != "detector":
        return None
    if len(parts) == 1:
        return "detector"
    return parts[1] if parts[1] in ALLOWED else None


def imported(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import in `tree`, `from x import y` as x.y when y is a module of
    this repository, as x otherwise; relative imports resolved against `module`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.append((node.lineno, name if _is_module(name) else base))
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def wrong_imports(module: str, source: str, path: str = "") -> list[str]:
    """Why each import of `module` (whose text is `source`) runs the wrong way, one line each."""
    where = path or module
    layer = layer_of(module) if module.startswith("detector.") else None
    if module.startswith("detector.") and layer is None:
        return [
            f"{where} is in no layer: put it in one of detector/{{{', '.join(sorted(set(ALLOWED) - {'settings', '__main__'}))}}}/"
        ]
    wrong: list[str] = []
    for line, name in imported(ast.parse(source), module):
        top = name.split(".")[0]
        # The shipped packages never import the dev tools; the dev tools may share each other's
        # helpers (the benchmarks start the tests' Apache Kafka).
        if top in ("bench", "tests") and module.split(".")[0] in ("detector", "producers"):
            wrong.append(
                f"{where}:{line} imports {name}: {top}/ is not part of the product and is not shipped in the wheel"
            )
        elif name.split(".")[-1] == "__main__":
            wrong.append(
                f"{where}:{line} imports {name}: a `__main__` is a command's entry point; import the library module it uses"
            )
        elif layer is None:
            continue
        elif layer == "core" and any(
            name == lib or name.startswith(f"{lib}.") for lib in EDGE_LIBRARIES
        ):
            wrong.append(f"{where}:{line} imports {name}: {ALLOWED['core'][1]}")
        elif top == "producers" and layer != "commands":
            wrong.append(
                f"{where}:{line} imports {name}: producers (the traffic generator) is for the commands only"
            )
        elif top == "detector":
            target = layer_of(name)
            allowed, why = ALLOWED[layer]
            if target not in {"detector", layer, *allowed}:
                wrong.append(
                    f"{where}:{line} imports {name}: {layer} may import only {', '.join(sorted({layer, *allowed}))} from detector ({why})"
                )
    return wrong


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"), path)
        for package in ("detector", "bench")
        for path in sorted((ROOT / package).rglob("*.py"))
    ]


def test_every_import_in_detector_and_bench_runs_the_right_way() -> None:
    modules = _modules()
    assert len(modules) > 40 and any(name == "detector.core.pipeline" for name, _ in modules)
    wrong = [
        line
        for name, path in modules
        for line in wrong_imports(name, path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not wrong, "imports that run the wrong way (docs/layout.md):\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("module", "source", "reason"),
    [
        # The three wrong-way imports the move to this layout removed.
        (
            "detector.backtest.summary",
            "from detector.commands.demo import describe",
            "backtest may import only backtest, core, kafka, settings",
        ),
        (
            "detector.backtest.replay",
            "from detector.service.service import GC_THRESHOLDS",
            "backtest may import only backtest, core, kafka, settings",
        ),
        (
            "bench.backtest",
            "def simulate():\n    from producers.__main__ import main\n",
            "a `__main__` is a command's entry point",
        ),
        ("detector.core.pipeline", "import confluent_kafka", "core is the pure logic"),
        ("detector.core.state", "from prometheus_client import Counter", "core is the pure logic"),
        (
            "detector.core.events",
            "from detector.kafka.topics import ensure_topics",
            "core may import only core, settings",
        ),
        (
            "detector.kafka.delivery",
            "from detector.http.metrics import Metrics",
            "kafka may import only core, kafka, settings",
        ),
        (
            "detector.http.metrics",
            "from detector.service import service",
            "http may import only core, http, settings",
        ),
        (
            "detector.settings",
            "from detector.core.events import Event",
            "settings may import only settings",
        ),
        (
            "detector.service.service",
            "from detector.backtest.replay import replay",
            "service may import only core, http, kafka, service, settings",
        ),
        ("detector.commands.demo", "import bench.throughput", "bench/ is not part of the product"),
        (
            "detector.core.alerts",
            "from producers.stream import Batch",
            "producers (the traffic generator) is for the commands only",
        ),
    ],
)
def test_a_wrong_way_import_is_named_with_the_reason(module: str, source: str, reason: str) -> None:
    (message,) = wrong_imports(module, source)
    assert message.startswith(f"{module}:") and reason in message


@pytest.mark.parametrize(
    ("module", "source"),
    [
        (
            "detector.core.monitors.model",
            "from detector.core.alerts import Alert\nfrom detector.settings import ModelSettings\nimport river",
        ),
        (
            "detector.kafka.checkpoint",
            "from detector.kafka.delivery import Outputs\nfrom detector.core.state import StateCodec",
        ),
        (
            "detector.http.metrics",
            "from detector import __version__\nfrom prometheus_client import Counter",
        ),
        (
            "detector.backtest.topics",
            "from confluent_kafka import Consumer\nfrom detector.kafka.clients import consumer_config",
        ),
        (
            "detector.commands.demo",
            "from detector.service.service import Service\nfrom producers.play import play",
        ),
        (
            "bench.throughput",
            "from detector.service.service import Service\nfrom producers.sinks import KafkaSink",
        ),
    ],
)
def test_imports_along_the_data_flow_are_allowed(module: str, source: str) -> None:
    assert wrong_imports(module, source) == []


def test_a_module_outside_every_layer_is_named() -> None:
    (message,) = wrong_imports("detector.consume", "import gc")
    assert "detector.consume is in no layer" in message
