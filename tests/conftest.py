"""Shared fixtures: an isolated BentoML store with the reference bento, and local deployments that always stop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops import bentos
from modelops.targets.local import LocalTarget, procs
from stacks.config import StackConfig, load_stack_config


@pytest.fixture(scope="session", autouse=True)
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every test session gets its own BentoML store: nothing leaks into ~/bentoml or the project's .work."""
    home = tmp_path_factory.mktemp("bentoml")
    saved = {k: os.environ.get(k) for k in ("BENTOML_HOME", "BENTOML_DO_NOT_TRACK")}
    os.environ.update(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="true")
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def reference_bento(bentoml_home: Path) -> str:
    """The reference model (seed 1) trained and built once per session; returns the bento tag."""
    from bento import train

    train.save(seed=1)
    return bentos.build()


def local_settings(state_dir: Path, **overrides: dict) -> StackConfig:
    base = {"state_dir": str(state_dir), "ready_timeout_s": 90}
    settings = load_stack_config("local")
    # Each deployment logs its predictions beside its state, never into the project's .work.
    monitor = {
        "log_dir": str(state_dir / "predictions"),
        "feedback_file": str(state_dir / "feedback.jsonl"),
        **overrides.pop("monitor", {}),
    }
    return settings.with_overrides(local={**base, **overrides.pop("local", {})}, monitor=monitor, **overrides)


@pytest.fixture
def make_target(tmp_path: Path) -> Iterator:
    """Factory for LocalTargets in this test's temp dir; every one is torn down and checked for leftovers."""
    made: list[LocalTarget] = []

    def make(**overrides: dict) -> LocalTarget:
        target = LocalTarget(local_settings(tmp_path / f"state{len(made)}", **overrides))
        made.append(target)
        return target

    yield make
    for target in made:
        target.down()
        assert procs.marked_processes(target.deployment) == [], f"processes left behind by {target.dir}"


@pytest.fixture(scope="module")
def live_deployment(tmp_path_factory: pytest.TempPathFactory, reference_bento: str) -> Iterator[LocalTarget]:
    """Two replicas of the reference bento behind HAProxy, shared by a module's read-only tests."""
    target = LocalTarget(local_settings(tmp_path_factory.mktemp("deployment")))
    try:
        target.up(reference_bento, replicas=2, workers=1)
        yield target
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []
