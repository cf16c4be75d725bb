"""modelops/bentos.py: one BentoML store for make, the CLI, the stacks' image scripts and the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from modelops.bentos import bentoml_home, not_found_hint, use_project_store
from stacks.names import BENTOML_HOME_DEFAULT, PROJECT_ROOT


def test_without_bentoml_home_the_store_is_the_project_s_work_dir_not_the_user_s_home() -> None:
    environ: dict[str, str] = {}
    assert use_project_store(environ) == BENTOML_HOME_DEFAULT == PROJECT_ROOT / ".work" / "bentoml"
    assert environ["BENTOML_HOME"] == str(BENTOML_HOME_DEFAULT)  # exported: `bentoml build/serve` children use it


def test_bentoml_home_is_honoured(tmp_path) -> None:
    environ = {"BENTOML_HOME": str(tmp_path)}
    assert use_project_store(environ) == tmp_path == bentoml_home(environ)


def test_the_cli_outside_make_uses_the_same_store_as_make_and_the_image_scripts(tmp_path) -> None:
    """What RUNNING.md runs: `.venv/bin/modelops ...` in a shell without make's exports."""
    env = {k: v for k, v in os.environ.items() if k != "BENTOML_HOME"}
    code = "import modelops.bentos, os, bentoml._internal.configuration.containers as c; " \
           "print(os.environ['BENTOML_HOME']); print(c.BentoMLContainer.bentoml_home.get())"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exported, bentoml_sees = done.stdout.split()
    assert Path(exported) == Path(bentoml_sees) == BENTOML_HOME_DEFAULT
    for script in ("stacks/kind/image.sh", "stacks/aws/image.sh"):
        assert 'BENTOML_HOME="${BENTOML_HOME:-$PWD/.work/bentoml}"' in (PROJECT_ROOT / script).read_text()


def test_a_missing_bento_names_both_stores_when_the_user_store_has_it(tmp_path) -> None:
    user_store = tmp_path / "bentoml"
    (user_store / "bentos" / "svc" / "v1").mkdir(parents=True)
    message = not_found_hint("svc:v1", tmp_path / "project" / ".work" / "bentoml", user_store)
    assert str(tmp_path / "project" / ".work" / "bentoml" / "bentos") in message
    assert f"{user_store / 'bentos' / 'svc'} holds it" in message and f"BENTOML_HOME={user_store}" in message


def test_a_missing_bento_found_nowhere_says_how_to_build_one(tmp_path) -> None:
    message = not_found_hint("svc:v1", tmp_path / "store", tmp_path / "empty-user-store")
    assert "holds it" not in message and "modelops build" in message
