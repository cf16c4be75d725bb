"""Pulumi stack outputs, as the kind and aws drivers read them, and what a driver derives from them.

A deployed stack's outputs are a JSON object keyed by the constants in :mod:`stacks.outputs`:
``pulumi stack output --json -s aws > outputs.json``. :func:`load_outputs` reads such a file (no Pulumi needed);
:func:`pulumi_outputs` asks the Pulumi CLI directly where it is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from modelops.errors import DeploymentError, MissingToolError, UsageError
from stacks import outputs as keys
from stacks.names import PROJECT_ROOT

# BentoML 1.4 reads this JSON after the service decorator's settings, so it overrides `workers=` without a rebuild
# (checked in bentoml/_internal/configuration/containers.py: defaults < file < BENTOML_CONFIG_OVERRIDES).
BENTOML_OVERRIDES_ENV = "BENTOML_CONFIG_OVERRIDES"
BENTO_PORT = 3000  # `bentoml serve` in a containerized bento listens here


def _export_hint(stack: str) -> str:
    return f"pulumi stack output --json -s {stack} > outputs.json"


def load_outputs(path: Path, required: Iterable[str] = (), stack: str = "aws") -> dict[str, Any]:
    """Read ``pulumi stack output --json`` saved in ``path``; every key in ``required`` must be present."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"no stack outputs file at {path}: on a machine with the Pulumi CLI run `{_export_hint(stack)}` "
            f"after `pulumi up -s {stack}`, then pass that file"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{path} is not JSON ({exc}): write it with `{_export_hint(stack)}` (the --json flag matters)"
        ) from None
    return check_outputs(data, required, source=str(path), stack=stack)


def check_outputs(data: Any, required: Iterable[str], source: str, stack: str = "aws") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UsageError(f"{source} must hold a JSON object of stack outputs, got {type(data).__name__}")
    missing = [key for key in required if data.get(key) in (None, "", {}, [])]
    if missing:
        names = ", ".join(repr(k) for k in missing)
        raise UsageError(
            f"stack outputs in {source} lack {names} (names in stacks/outputs.py): is this the {stack} stack? "
            f"Run `pulumi up -s {stack}`, then `{_export_hint(stack)}`"
        )
    return data


def pulumi_outputs(
    stack: str,
    required: Iterable[str] = (),
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
    cwd: Path = PROJECT_ROOT,
) -> dict[str, Any]:
    """The stack's outputs straight from the Pulumi CLI (``pulumi stack output --json -s <stack>``)."""
    pulumi = which("pulumi")
    if pulumi is None:
        raise MissingToolError(
            "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/): install it, or on a machine "
            f"that has it run `{_export_hint(stack)}` and pass that file instead"
        )
    result = runner(
        [pulumi, "stack", "output", "--json", "--stack", stack],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout or "").strip()
        raise DeploymentError(
            f"`pulumi stack output --json --stack {stack}` failed with exit code {result.returncode}: {detail}"
        )
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise DeploymentError(f"`pulumi stack output --json --stack {stack}` printed no JSON ({exc})") from None
    return check_outputs(data, required, source=f"`pulumi stack output -s {stack}`", stack=stack)


def bento_name(bento: str) -> str:
    """``wine_classifier_service:abc123`` → ``wine_classifier_service``.

    bento/bentofile.yaml names the bento after its service, so this is also the BentoML service name that the
    worker override has to address."""
    name, _, version = bento.partition(":")
    if not name or not version:
        raise UsageError(f"a bento tag looks like name:version (e.g. wine_classifier_service:abc123), got {bento!r}")
    return name


def with_workers(overrides: str | None, bento: str, workers: int) -> str:
    """A BENTOML_CONFIG_OVERRIDES value: ``overrides`` with every service in it set to ``workers`` workers.

    The other settings in it (the stack's request timeout) stay. Without any, the service named after the bento
    (bento/bentofile.yaml names the bento after its service) gets the workers."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise UsageError(f"workers must be a whole number from 1 to 64, got {workers!r}")
    try:
        document = json.loads(overrides) if overrides else {}
    except json.JSONDecodeError:
        raise DeploymentError(f"{BENTOML_OVERRIDES_ENV} is not JSON: {overrides!r}") from None
    services = document.setdefault("services", {}) if isinstance(document, dict) else None
    if not isinstance(services, dict):
        raise DeploymentError(f"{BENTOML_OVERRIDES_ENV} has no 'services' mapping: {overrides!r}")
    if not services:
        services[bento_name(bento)] = {}
    for settings in services.values():
        settings["workers"] = workers
    return json.dumps(document, separators=(",", ":"))


def workers_from_override(value: str | None) -> int | None:
    """Read back the worker count a BENTOML_CONFIG_OVERRIDES value sets; None when it sets none."""
    try:
        services = json.loads(value or "")["services"]
        return next(int(s["workers"]) for s in services.values() if "workers" in s)
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return None


def image_for(bento: str, outputs: dict[str, Any]) -> str:
    """The container image that serves ``bento`` on kind: the image the stack built for the stack's bento, else
    the tag `bentoml containerize` gives it (``<name>:<version>``), which stacks/kind/image.sh loads into kind."""
    if bento == outputs.get(keys.BENTO) and outputs.get(keys.IMAGE):
        return str(outputs[keys.IMAGE])
    bento_name(bento)  # name:version, or a clear error
    return bento
