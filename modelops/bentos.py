"""Bentos: build the reference one, and describe any bento by tag from what the bento itself declares.

Nothing below the build step assumes the reference model: the service name, its models and (when the model's
metadata carries them) golden examples are all read from the bento and the model store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from modelops.errors import BentoNotFoundError, DeploymentError
from stacks.names import BENTOML_HOME_DEFAULT, PROJECT_ROOT

BENTO_DIR = PROJECT_ROOT / "bento"
REFERENCE_MODEL = "wine_classifier"
BUILD_HINT = "build one with `modelops build` (the reference model) or `bentoml build` in your service's folder"


@dataclass(frozen=True)
class BentoInfo:
    tag: str
    service: str  # the BentoML service name: the key of its settings in a BENTOML_CONFIG file
    path: Path
    models: list[str]
    golden: dict | None  # {"rows": [...], "labels": [...], "probabilities": [...]} when the model declares one


USER_STORE = Path.home() / "bentoml"  # BentoML's own default, used when BENTOML_HOME is unset outside modelops


def bentoml_home(environ: MutableMapping[str, str] = os.environ) -> Path:
    """The one bento store: $BENTOML_HOME, else the project's .work/bentoml (as make, the stacks' image.sh and the
    tests use), never BentoML's ~/bentoml by accident."""
    return Path(environ.get("BENTOML_HOME") or BENTOML_HOME_DEFAULT)


def use_project_store(environ: MutableMapping[str, str] = os.environ) -> Path:
    """Export BENTOML_HOME so BentoML in this process (imported later) and every child process (bentoml build,
    bentoml serve) use the same store as make and the stacks' image scripts."""
    home = bentoml_home(environ)
    environ["BENTOML_HOME"] = str(home)
    return home


# At import, before anything imports bentoml (it reads BENTOML_HOME once): every modelops command that touches a
# bento imports this module first.
use_project_store()


def not_found_hint(tag: str, home: Path, user_store: Path = USER_STORE) -> str:
    """Where the bento was looked for, and the other store it may be in."""
    elsewhere = ""
    name, _, version = tag.partition(":")
    if home.resolve() != user_store.resolve() and (user_store / "bentos" / name).is_dir():
        found = version and version != "latest" and (user_store / "bentos" / name / version).is_dir()
        elsewhere = (
            f"; {user_store / 'bentos' / name} {'holds it' if found else 'has bentos of that name'} (BentoML's "
            f"default store, used when BENTOML_HOME is unset): rebuild with `modelops build`, or run with "
            f"BENTOML_HOME={user_store}"
        )
    return f"bento {tag!r} not found in {home / 'bentos'} (BENTOML_HOME){elsewhere}: {BUILD_HINT}"


def last_build_file() -> Path:
    return bentoml_home() / "modelops-last-build"


def last_built() -> str | None:
    try:
        return last_build_file().read_text().strip() or None
    except FileNotFoundError:
        return None


def describe(tag: str) -> BentoInfo:
    """Resolve ``tag`` (``name:version`` or ``name:latest``) in the local bento store."""
    import bentoml  # slow to import: only when needed

    try:
        bento = bentoml.bentos.get(tag)
    except bentoml.exceptions.NotFound:
        raise BentoNotFoundError(not_found_hint(tag, bentoml_home())) from None
    except bentoml.exceptions.BentoMLException as exc:
        raise BentoNotFoundError(f"bento {tag!r} cannot be read: {exc}") from None
    info = bento.info
    models = [str(m.tag) for m in info.all_models]
    golden = None
    for model_tag in models:
        try:
            metadata = bentoml.models.get(model_tag).info.metadata
        except bentoml.exceptions.NotFound:
            continue
        declared = metadata.get("golden")
        if isinstance(declared, dict):
            golden = declared
            break
    service = info.entry_service or (info.services[0].name if info.services else info.name)
    return BentoInfo(tag=str(info.tag), service=service, path=Path(bento.path), models=models, golden=golden)


def resolve_default(explicit: str | None, configured: str) -> str:
    """The bento to deploy: --bento, else modelops:bento from the stack file, else the last `modelops build`."""
    tag = explicit or configured or last_built()
    if not tag:
        raise BentoNotFoundError(f"no bento given and none built yet: {BUILD_HINT}, or pass --bento TAG")
    return tag


def has_reference_model() -> bool:
    import bentoml

    try:
        bentoml.models.get(f"{REFERENCE_MODEL}:latest")
    except bentoml.exceptions.NotFound:
        return False
    return True


def build(
    bento_dir: Path = BENTO_DIR, bentofile: str = "bentofile.yaml", record: bool = True, env: dict | None = None
) -> str:
    """``bentoml build`` the service in ``bento_dir``; returns the new bento's tag (recorded as the last build).

    The template in bento/ serves one model: the reference model (newest version) unless ``env`` names another
    (MODELOPS_MODEL, as `modelops build --model` does). That model is prepared first — profile and acceleration
    recorded in its metadata (modelops/modelbuild.py) — unless a build already did."""
    if bento_dir == BENTO_DIR and env is None:
        from modelops import modelbuild

        built = modelbuild.build_model(f"{REFERENCE_MODEL}:latest", record=record, bentofile=bentofile, force=False)
        return str(built.bento)
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", ".", "--bentofile", bentofile, "--output", "tag"],
        cwd=bento_dir,  # bentoml refuses a bentofile outside its working directory
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise DeploymentError(f"bentoml build failed in {bento_dir}:\n{(result.stderr or result.stdout)[-3000:]}")
    tag = _parse_tag(result.stdout)
    if not record:
        return tag
    path = last_build_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tag + "\n")
    return tag


def _parse_tag(output: str) -> str:
    # `--output tag` prints `__tag__:name:version`; older versions print the bare tag.
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("__tag__:"):
            return line.removeprefix("__tag__:")
        if ":" in line and " " not in line:
            return line
    raise DeploymentError(f"could not read the bento tag from bentoml build's output:\n{output[-1000:]}")
