"""Read what `modelops render` wrote: the recorded resources of a stack run under Pulumi mocks, and the tools
(checkov, shellcheck, kubernetes-validate) the policy tests run on the rendered files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHECKOV = PROJECT_ROOT / ".venv-tools" / "bin" / "checkov"


@dataclass
class Rendering:
    """One rendered stack: ``resources.json`` and the files beside it."""

    directory: Path
    record: dict

    @classmethod
    def load(cls, directory: Path) -> Rendering:
        return cls(directory, json.loads((directory / "resources.json").read_text()))

    @property
    def resources(self) -> list[dict]:
        return self.record["resources"]

    @property
    def outputs(self) -> dict[str, Any]:
        return self.record["outputs"]

    def of_type(self, type_: str) -> list[dict]:
        return [r for r in self.resources if r["type"] == type_]

    def one(self, type_: str, name: str) -> dict:
        found = [r for r in self.resources if r["type"] == type_ and r["name"] == name]
        names = sorted(r["name"] for r in self.of_type(type_))
        assert len(found) == 1, f"expected one {type_} named {name!r}, have: {names}"
        return found[0]

    def inputs(self, type_: str, name: str) -> dict:
        return self.one(type_, name)["inputs"]

    def by_urn(self, urn: str) -> dict:
        return next(r for r in self.resources if r["urn"] == urn)

    def kubernetes(self, kind: str, name: str, namespace: str | None = None) -> dict:
        """The rendered YAML of one Kubernetes object (what kubectl/the provider would send)."""
        for path in sorted((self.directory / "kubernetes").glob("*.yaml")):
            obj = yaml.safe_load(path.read_text())
            meta = obj.get("metadata", {})
            if obj["kind"] == kind and meta.get("name") == name and meta.get("namespace") == namespace:
                return obj
        raise AssertionError(f"no {kind} {namespace}/{name} among {self.directory / 'kubernetes'}")

    def warnings(self) -> list[str]:
        return [m["message"] for m in self.record["logs"] if m["severity"] == "warning"]


def render_with_cli(stack: str, out: Path, stacks_dir: Path | None = None, work_dir: Path | None = None) -> Rendering:
    """Run the real command line, `modelops render --stack STACK --out OUT`, in a fresh process.

    ``work_dir`` is where the program looks for the stack's promotion history (``<work_dir>/<stack>/history.json``);
    by default an empty folder beside ``out``, so what a developer promoted on this machine never changes a test."""
    env = {k: v for k, v in os.environ.items() if k not in ("MODELOPS_STACKS_DIR", "MODELOPS_WORK_DIR")}
    if stacks_dir is not None:
        env["MODELOPS_STACKS_DIR"] = str(stacks_dir)
    if work_dir is None:
        work_dir = out.parent / "work"
        work_dir.mkdir(parents=True, exist_ok=True)
    env["MODELOPS_WORK_DIR"] = str(work_dir)
    done = subprocess.run(
        [str(VENV_BIN / "modelops"), "render", "--stack", stack, "--out", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"modelops render --stack {stack} failed:\n{done.stdout}\n{done.stderr}"
    return Rendering.load(out)


def copy_stack(stack: str, stacks_dir: Path, **section_overrides: dict[str, Any]) -> Path:
    """stacks/Pulumi.<stack>.yaml copied into ``stacks_dir``, some section keys replaced (e.g. aws={...})."""
    document = yaml.safe_load((PROJECT_ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
    for section, values in section_overrides.items():
        key = f"modelops:{section}"
        document["config"][key] = {**document["config"].get(key, {}), **values}
    stacks_dir.mkdir(parents=True, exist_ok=True)
    (stacks_dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return stacks_dir


def tool(name: str) -> str:
    """Path of a checker the policy tests need. Missing is a failure, not a skip: `make test` installs them."""
    path = str(CHECKOV) if name == "checkov" and CHECKOV.exists() else shutil.which(name)
    if name == "kubernetes-validate":
        candidate = VENV_BIN / name
        path = str(candidate) if candidate.exists() else path
    if not path:
        pytest.fail(f"{name} is not installed: `make setup` installs it (make test runs setup first)")
    return path


def run_checkov(target: Path, framework: str) -> dict:
    """checkov's JSON report for one file or directory (offline: no platform key, no guideline download)."""
    option = "-f" if target.is_file() else "-d"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"}
    done = subprocess.run(
        [tool("checkov"), option, str(target), "--framework", framework, "--compact", "-o", "json",
         "--skip-download"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.stdout.strip(), f"checkov printed no report (exit {done.returncode}):\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    assert len(reports) == 1, f"expected one checkov report, got {[r.get('check_type') for r in reports]}"
    return reports[0]
