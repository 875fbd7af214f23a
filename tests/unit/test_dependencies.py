"""Dependencies cannot silently break detection.

* The private river APIs the detector keeps (ADWIN's Rust core, for speed and for its state;
  the binary detectors' attributes, for their state) decide exactly as river's public API does;
  a river release that changes them fails here, and river is bounded below its next minor.
* No other private attribute of a dependency is used (a source scan).
* Every dependency has a lower and an upper bound, and constraints.txt pins each within them.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import numpy as np
import orjson
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from river import stats
from river.drift import ADWIN

from detector.core.monitors.binary import (
    binary_state,
    load_binary_state,
    make_binary_detectors,
    running_mean,
)
from detector.core.monitors.detectors import ADWIN_CLOCK, BlockAdwin

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# Private attributes of dependencies the detector may use: (module, attribute) -> distribution
# that must be bounded below its next minor. Anything else private is our own or refused.
PINNED_PRIVATE = {("detector/core/monitors/detectors.py", "_helper"): "river"}
# Underscored but documented public API: os._exit, and namedtuple methods (prometheus_client's
# Sample is one).
STDLIB_DOCUMENTED = {"_exit", "_replace"}


def public_adwin_decisions(means: list[float], block_events: int) -> list[tuple[int, int]]:
    """(block number, change age in events) of river's public ADWIN fed the scaled means."""
    adwin, decisions = ADWIN(delta=0.002, clock=ADWIN_CLOCK, max_buckets=5), []
    for number, mean in enumerate(means):
        adwin.update((mean - 0.5) * np.sqrt(block_events) + 0.5)
        if adwin.drift_detected:
            decisions.append((number, adwin.width * block_events))
    return decisions


def test_block_adwin_checkpointed_after_every_batch_decides_as_the_public_adwin() -> None:
    """The private path (`_helper.update`, and the state through `_helper.__getstate__`), with
    a checkpoint and restore after every batch, signals at the same blocks with the same
    widths as river's public ADWIN fed every block mean without a break."""
    rng = np.random.default_rng(11)
    values = np.concatenate(
        [rng.random(30_000), 0.25 + 0.75 * rng.random(20_000), rng.random(30_000) ** 2]
    )
    block_events, ours, means = 16, [], []
    adwin = BlockAdwin(delta=0.002, block_events=block_events)
    for start in range(0, len(values), 1_001):
        found = adwin.update(values[start : start + 1_001])
        ends = found.block_ends.tolist()
        ours += [(len(means) + ends.index(h.index), h.change_age) for h in found.hits]
        means += found.block_means.tolist()
        state = orjson.loads(orjson.dumps(adwin.to_state(), option=orjson.OPT_SERIALIZE_NUMPY))
        adwin = BlockAdwin(delta=0.002, block_events=block_events)
        adwin.load_state(state)
    assert len(ours) >= 2, "both changes must be detected"
    assert ours == public_adwin_decisions(means, block_events)


@pytest.mark.parametrize("errors_before, errors_after", [(0.1, 0.3), (0.05, 0.2)])
def test_binary_detectors_restored_mid_stream_decide_as_the_uninterrupted_ones(
    errors_before: float, errors_after: float
) -> None:
    """The binary detectors' private attributes, encoded and loaded at every checkpoint,
    carry everything: the decisions match one detector fed through the public `update`."""
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [rng.random(3_000) < errors_before, rng.random(3_000) < errors_after]
    ).astype(int)
    uninterrupted = make_binary_detectors(1e-4, reference_size=500, reference_errors=50)
    restored = make_binary_detectors(1e-4, reference_size=500, reference_errors=50)
    assert set(uninterrupted) == {"hddm_a", "ddm"}
    expected = {name: [] for name in uninterrupted}
    found = {name: [] for name in uninterrupted}
    for index, value in enumerate(values.tolist()):
        for name in uninterrupted:
            uninterrupted[name].update(value)
            if uninterrupted[name].drift_detected:
                expected[name].append(index)
            state = orjson.loads(orjson.dumps(binary_state(restored[name])))
            restored[name] = make_binary_detectors(1e-4, reference_size=500, reference_errors=50)[
                name
            ]
            load_binary_state(restored[name], state)
            restored[name].update(value)
            if restored[name].drift_detected:
                found[name].append(index)
    assert all(expected.values()), "the rise in errors must be detected by both"
    assert found == expected


def test_a_running_mean_rebuilt_through_the_public_update_is_the_same_bits() -> None:
    rng = np.random.default_rng(3)
    original = stats.Mean()
    for x in rng.random(1_000).tolist():
        original.update(x)
    rebuilt = running_mean(original.n, original.get())
    assert (rebuilt.n, rebuilt.get()) == (original.n, original.get())
    for x in rng.random(100).tolist():
        original.update(x)
        rebuilt.update(x)
        assert rebuilt.get() == original.get()
    assert (running_mean(0.0, 0.0).n, running_mean(0.0, 0.0).get()) == (0.0, 0.0)


def own_private_names() -> set[str]:
    """Private names the project defines itself (functions, classes, attributes, variables)."""
    names: set[str] = set()
    for path in [*REPO.glob("detector/**/*.py"), *REPO.glob("producers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if name.startswith("_")}


def is_local_kafka_error(node: ast.Attribute) -> bool:
    """`KafkaError._TRANSPORT` and the like: librdkafka's local error codes, public (documented
    with their underscore in confluent-kafka's API reference)."""
    return (
        isinstance(node.value, ast.Name) and node.value.id == "KafkaError" and node.attr.isupper()
    )


def test_no_private_attribute_of_a_dependency_is_used_unless_pinned() -> None:
    ours = own_private_names()
    used: set[tuple[str, str]] = set()
    for path in REPO.glob("detector/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                not isinstance(node, ast.Attribute)
                or not node.attr.startswith("_")
                or node.attr.startswith("__")
            ):
                continue
            if node.attr in ours or node.attr in STDLIB_DOCUMENTED or is_local_kafka_error(node):
                continue
            used.add((str(path.relative_to(REPO)), node.attr))
    assert used <= set(PINNED_PRIVATE), (
        f"private attributes of dependencies: {sorted(used - set(PINNED_PRIVATE))}"
    )
    requirements = {
        canonicalize_name(r.name): r for r in map(Requirement, PYPROJECT["project"]["dependencies"])
    }
    for distribution in set(PINNED_PRIVATE.values()):
        upper = [s.version for s in requirements[distribution].specifier if s.operator == "<"]
        lower = [s.version for s in requirements[distribution].specifier if s.operator == ">="]
        assert upper and lower, f"{distribution}: a private API needs both bounds"
        assert upper[0].split(".")[:2] != lower[0].split(".")[:2] and upper[0].count(".") == 1, (
            f"{distribution}: a private API is bounded below the next minor release"
        )


def declared_requirements() -> list[Requirement]:
    project = PYPROJECT["project"]
    extras = [r for group in project["optional-dependencies"].values() for r in group]
    return [Requirement(r) for r in [*project["dependencies"], *extras]]


def constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.+!-]*)", line)
        assert match, f"constraints.txt: {line!r} is not name==version"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_every_dependency_has_a_lower_and_an_upper_bound() -> None:
    for requirement in declared_requirements():
        operators = {s.operator for s in requirement.specifier}
        assert {">=", "<"} <= operators, (
            f"{requirement}: needs a tested lower bound and an upper bound"
        )


def test_constraints_pin_every_dependency_within_its_bounds() -> None:
    pins = constraints()
    for requirement in declared_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"constraints.txt does not pin {requirement.name}"
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}"
        )
    assert "streamdrift" not in pins, "the project itself is installed from the tree, not pinned"


def test_make_venv_installs_with_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    installs = [
        line for line in makefile.splitlines() if "pip install" in line and "-e '.[test]'" in line
    ]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
