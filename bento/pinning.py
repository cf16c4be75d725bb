"""Which model version a bento serves: the one it was built with.

Imported by the service at start-up (inside the bento), so it needs only the standard library and PyYAML (a
dependency of BentoML itself).
"""

from __future__ import annotations

from pathlib import Path

import yaml


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
