"""The pinned install works on every interpreter the README promises: Python 3.11 (Debian 12's 3.11.2 included)
through 3.13. A pin whose Requires-Python excludes one of them breaks `make` on that machine with
ResolutionImpossible (soupsieve >= 3.0.2 did so on 3.11.2), and our own newer 3.11 would hide it."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
# The oldest and newest interpreters promised: Debian 12's python3.11 and the newest minor the README names.
PROMISED = ["3.11.0", "3.11.2", "3.12.0", "3.13.0"]


def pins(constraints: Path) -> dict[str, str]:
    found = {}
    for line in constraints.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def test_project_promises_python_3_11_to_3_13():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    allowed = SpecifierSet(project["requires-python"])
    assert all(allowed.contains(v) for v in PROMISED), f"requires-python {allowed} excludes one of {PROMISED}"
    assert not allowed.contains("3.10.12"), "requires-python admits 3.10, which the code does not support"


def test_every_pin_is_what_is_installed():
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    pinned = pins(ROOT / "constraints.txt")
    wrong = {name: (version, installed.get(name)) for name, version in pinned.items() if installed.get(name) != version}
    # Platform-specific pins (none today) would be absent here; a different version means the venv is stale.
    assert not wrong, f"pinned vs installed differ (run `make setup`): {wrong}"


@pytest.mark.parametrize("interpreter", PROMISED)
def test_every_pin_admits_the_promised_interpreter(interpreter: str):
    pinned = pins(ROOT / "constraints.txt")
    refused = {}
    for dist in importlib.metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        requires = dist.metadata.get("Requires-Python")
        if name in pinned and requires and not SpecifierSet(requires).contains(interpreter):
            refused[f"{name}=={dist.version}"] = requires
    assert not refused, f"these pins refuse Python {interpreter} (pin an older release in constraints.txt): {refused}"


TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
LIST_REQUIRES = (
    "import importlib.metadata as m, json; "
    "print(json.dumps({d.metadata['Name']: d.metadata.get('Requires-Python') for d in m.distributions()}))"
)


@pytest.mark.skipif(not TOOLS_PYTHON.exists(), reason="no .venv-tools: `make setup-test` builds it")
def test_every_tools_pin_admits_the_oldest_promised_interpreter():
    """checkov's venv (constraints-tools.txt) is built with the same interpreter as the main one."""
    import json
    import subprocess

    listed = subprocess.run([str(TOOLS_PYTHON), "-c", LIST_REQUIRES], capture_output=True, text=True, check=True)
    pinned = pins(ROOT / "constraints-tools.txt")
    refused = {
        name: requires
        for name, requires in json.loads(listed.stdout).items()
        if canonicalize_name(name) in pinned and requires and not SpecifierSet(requires).contains(PROMISED[1])
    }
    assert not refused, f"constraints-tools.txt pins refuse Python {PROMISED[1]}: {refused}"
