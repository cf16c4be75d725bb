"""Names shared by the stacks (producers) and the modelops drivers (consumers), in one Pulumi-free module.

Importing this module creates no resources and needs neither Pulumi nor a cluster: the kubernetes driver and the
local target read labels, ports and colours here instead of importing a Pulumi component.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, Colour] = ("blue", "green")

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # where Pulumi.yaml lives
# The project's work directory: BentoML's store (.work/bentoml) and each kind/aws stack's durable files
# (.work/<stack>/history.json, the promotion history). MODELOPS_WORK_DIR moves it (tests use throwaway ones).
WORK_DIR = Path(os.environ.get("MODELOPS_WORK_DIR") or PROJECT_ROOT / ".work")
BENTOML_HOME_DEFAULT = WORK_DIR / "bentoml"
HISTORY_FILE = "history.json"

# Kubernetes (stacks/kind/model_service.py makes these objects; modelops/targets/kubernetes.py patches them)
APP = "bento"  # Deployment/Service name prefix and app.kubernetes.io/name
COLOUR_LABEL = "modelops/colour"  # the label the live Service selects on; promotion patches it
APP_LABELS = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "modelops"}
CONTAINER_PORT = 3000  # `bentoml serve` in a containerized bento listens here (also the aws instances' container)
SERVICE_PORT = 80

# AWS (stacks/aws makes the listener and the ECR repository; modelops/targets/aws/driver.py keeps its state there)
LIVE_TAG = "modelops:live-colour"  # listener tag: the colour taking live traffic
PREVIOUS_TAG = "modelops:previous-colour"  # listener tag: the colour that was live before the last full shift
# ECR tag prefix of every image that has been live: the repository's lifecycle policy never expires these, so a
# rollback or a scale-out can always pull them.
PROTECTED_TAG_PREFIX = "live-"


def live_colour_from(tags: dict[str, str] | None, configured: Colour) -> Colour:
    """Which colour the live listener serves, as the driver last recorded it (its tag); the stack file's
    live_colour until a promotion has happened."""
    found = (tags or {}).get(LIVE_TAG)
    return found if found in COLOURS else configured


def deployment_name(colour: str) -> str:
    return f"{APP}-{colour}"


def cpu_quantity(cores: float) -> str:
    """A Kubernetes CPU quantity in millicores."""
    return f"{round(cores * 1000)}m"


def stack_work_dir(stack: str, work_dir: Path | None = None) -> Path:
    """Where a kind/aws stack's durable files live on this machine (the promotion history, locks)."""
    return (work_dir or WORK_DIR) / stack


def history_path(stack: str, work_dir: Path | None = None) -> Path:
    return stack_work_dir(stack, work_dir) / HISTORY_FILE
