"""Which model version a bento serves: the one it was built with.

Imported by the service at start-up (inside the bento), so it needs only the standard library and PyYAML (a
dependency of BentoML itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

ENV_MODEL = "MODELOPS_MODEL"  # the model a template build serves (name:version)
DEFAULT_MODEL = "wine_classifier"  # the reference model: what a build without MODELOPS_MODEL serves


def pinned_model(name: str, source: Path = Path(__file__)) -> str:
    """The version of model ``name`` this bento was built with, read from the bento.yaml beside its ``src/``; the
    newest in the store when this is not a built bento (``bentoml build`` itself, a dev server on the sources).

    BentoML 1.4 resolves ``BentoModel("name:latest")`` against the model store when the server starts, not against
    the bento: measured here, a bento built with v1 served v2 once v2 was trained, so a respawned replica of the live
    version would have served the candidate's model."""
    bento_yaml = source.resolve().parent.parent / "bento.yaml"
    if bento_yaml.is_file():
        info = yaml.safe_load(bento_yaml.read_text()) or {}
        for service in info.get("services") or []:
            for model in service.get("models") or []:
                if str(model.get("tag", "")).split(":")[0] == name:
                    return str(model["tag"])
    return f"{name}:latest"


def served_model(source: Path = Path(__file__), environ: Mapping[str, str] = os.environ) -> str:
    """The model the service template serves. Inside a built bento: the one model its bento.yaml lists (a template
    bento packs exactly one). Elsewhere (``bentoml build`` itself, a dev server on the sources): MODELOPS_MODEL
    (``modelops build --model`` sets it for the build), else the reference model, newest version."""
    bento_yaml = source.resolve().parent.parent / "bento.yaml"
    if bento_yaml.is_file():
        info = yaml.safe_load(bento_yaml.read_text()) or {}
        tags = {str(m["tag"]) for s in info.get("services") or [] for m in s.get("models") or [] if m.get("tag")}
        if len(tags) == 1:
            return tags.pop()
    wanted = environ.get(ENV_MODEL) or DEFAULT_MODEL
    return wanted if ":" in wanted else pinned_model(wanted, source)
