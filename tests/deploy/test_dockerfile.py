"""deploy/Dockerfile, checked without a Docker engine: a pinned slim base, a build stage and a
final stage, non-root, `streamdrift run` as entrypoint, a health check on /healthz, a build
context that holds everything `pip install .` needs (and nothing else), and an install pinned
by constraints.txt."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from detector.commands.cli import main as streamdrift
from detector.settings import Settings
from tests.deploy.support import DEPLOY, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


@dataclass(frozen=True)
class Instruction:
    keyword: str
    argument: str

    def exec_form(self) -> list[str]:
        return json.loads(self.argument)


def parse(path: Path) -> list[list[Instruction]]:
    """The Dockerfile's stages, each a list of instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[list[Instruction]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, argument = line.partition(" ")
        instruction = Instruction(keyword.upper(), " ".join(argument.split()))
        if instruction.keyword == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


STAGES = parse(DEPLOY / "Dockerfile")
BUILD, FINAL = STAGES[0], STAGES[-1]


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def copies(stage: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, destination) of the stage's COPY instructions from the build context."""
    result = []
    for instruction in stage:
        if instruction.keyword == "COPY" and not instruction.argument.startswith("--from"):
            *sources, destination = instruction.argument.split()
            result.append((sources, destination))
    return result


def context_includes(path: str) -> bool:
    """Whether deploy/Dockerfile.dockerignore lets `path` into the build context (last match wins)."""
    included = True
    for pattern in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or any(
            fnmatch.fnmatch(parent, pattern) for parent in Path(path).parents if str(parent) != "."
        ):
            included = negated
    return included


def packages() -> set[str]:
    """Top-level packages `pip install .` builds (pyproject's packages.find include)."""
    patterns = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    return {
        child.name
        for child in REPO.iterdir()
        if (child / "__init__.py").is_file()
        and any(fnmatch.fnmatch(child.name, p) for p in patterns)
    }


def test_two_stages_on_the_same_pinned_slim_python() -> None:
    assert len(STAGES) == 2
    images = {stage[0].argument.split()[0] for stage in STAGES}
    assert len(images) == 1, (
        "the virtual environment is copied between stages: both need the same interpreter"
    )
    image = images.pop()
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), (
        f"{image} is not a pinned slim Python 3.11"
    )


def test_the_image_runs_as_a_non_root_user() -> None:
    user = only(FINAL, "USER").argument.split(":")[0]
    assert user not in {"root", "0"}
    assert any(
        i.keyword == "RUN" and "useradd" in i.argument and f"--uid {user}" in i.argument
        for i in FINAL
    )


def test_the_entrypoint_is_the_console_script_and_the_command_runs_the_detector(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert only(FINAL, "ENTRYPOINT").exec_form() == ["streamdrift"]
    assert "streamdrift" in PYPROJECT["project"]["scripts"]
    command = only(FINAL, "CMD").exec_form()
    assert command == ["run"]
    with pytest.raises(SystemExit) as exit_:
        streamdrift([*command, "--help"])
    assert exit_.value.code == 0 and "consumer-group member" in capsys.readouterr().out


def test_the_final_stage_gets_the_virtual_environment_of_the_build_stage_on_its_path() -> None:
    venv = next(
        i.argument.split()[-1] for i in BUILD if i.keyword == "RUN" and "-m venv" in i.argument
    )
    copy = only(FINAL, "COPY").argument.split()
    assert copy == [f"--from={BUILD[0].argument.split()[-1]}", venv, venv]
    env = " ".join(i.argument for i in FINAL if i.keyword == "ENV")
    assert f"PATH={venv}/bin:$PATH" in env


def test_the_health_check_asks_healthz_on_the_metrics_port() -> None:
    healthcheck = only(FINAL, "HEALTHCHECK").argument
    assert "/healthz" in healthcheck and "STREAMDRIFT_METRICS__PORT" in healthcheck
    default_port = Settings().metrics.port
    assert f"'{default_port}'" in healthcheck
    assert only(FINAL, "EXPOSE").argument == str(default_port)


def test_the_build_context_holds_what_pip_install_needs() -> None:
    copied = [source for sources, _ in copies(BUILD) for source in sources]
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *packages()}
    assert packages() == {"detector", "producers"}
    assert needed <= set(copied), f"the build stage does not copy {sorted(needed - set(copied))}"
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
        assert context_includes(source), (
            f"COPY {source}: excluded by deploy/Dockerfile.dockerignore"
        )
    for unwanted in (".venv", "tests", ".git", "detector/__pycache__"):
        assert not context_includes(unwanted), f"{unwanted} would be sent to the Docker daemon"


def test_the_copied_sources_import_on_their_own(tmp_path: Path) -> None:
    """Every module of the packages imports from a tree holding only what the image copies."""
    for sources, destination in copies(BUILD):
        for source in sources:
            target = (
                tmp_path
                / destination.lstrip("./")
                / (Path(source).name if destination.endswith("/") else "")
            )
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(REPO / source, target)
    script = (
        "import importlib, pkgutil, sys\n"
        "root, tops = sys.argv[1], sys.argv[2:]\n"
        "for top in tops:\n"
        "    package = importlib.import_module(top)\n"
        "    assert package.__file__.startswith(root), f'{top} imported from {package.__file__}'\n"
        "    for module in pkgutil.walk_packages(package.__path__, top + '.'):\n"
        "        if not module.name.endswith('.__main__'):\n"
        "            importlib.import_module(module.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-c", script, str(tmp_path), *sorted(packages())]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_the_build_stage_installs_with_the_constraints_ci_tests() -> None:
    copied = {source for sources, _ in copies(BUILD) for source in sources}
    assert "constraints.txt" in copied and context_includes("constraints.txt")
    installs = [i.argument for i in BUILD if i.keyword == "RUN" and "pip install" in i.argument]
    assert installs and all(
        re.search(r"pip install (.* )?-c constraints\.txt ", command) for command in installs
    ), installs
