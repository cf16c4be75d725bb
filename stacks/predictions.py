"""The prediction log's settings as a replica's environment: one function for every target (the local target sets
it per replica; the kind Deployment and the aws boot script can carry the same variables), and where a stack keeps
its log and its labels on this machine."""

from __future__ import annotations

from pathlib import Path

from bento.prediction_log import (
    ENV_BACKUPS,
    ENV_DIR,
    ENV_MAX_BYTES,
    ENV_QUEUE_BYTES,
    ENV_REPLICA,
    ENV_RETENTION_S,
    ENV_SAMPLE_RATE,
    ENV_SYNTHETIC_SECRET,
)
from stacks.config import PROJECT_ROOT, MonitorSettings, StackConfig
from stacks.names import stack_work_dir

PREDICTIONS_DIR = "predictions"
LABELS_DB = "labels.sqlite"


def stack_dir(settings: StackConfig) -> Path:
    """The stack's own directory on this machine: the local deployment's state (modelops:local.state_dir/<stack>),
    or the kind/aws stack's durable files (stacks.names.stack_work_dir)."""
    if settings.target == "local":
        base = Path(settings.local.state_dir)
        return ((base if base.is_absolute() else PROJECT_ROOT / base) / settings.stack).resolve()
    return stack_work_dir(settings.stack).resolve()


def _in_project(path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else PROJECT_ROOT / path


def prediction_log_dir(settings: StackConfig) -> Path:
    """Where the stack's replicas log (modelops:monitor.log_dir; by default predictions/ in the stack's directory,
    so two stacks on one machine never mix their traffic)."""
    configured = settings.monitor.log_dir
    return _in_project(configured) if configured else stack_dir(settings) / PREDICTIONS_DIR


def labels_db(settings: StackConfig) -> Path:
    """The stack's durable label store (modelops:monitor.labels_db; by default labels.sqlite in its directory)."""
    configured = settings.monitor.labels_db
    return _in_project(configured) if configured else stack_dir(settings) / LABELS_DB


def feedback_file(settings: StackConfig) -> Path:
    """Where ground-truth labels for logged requests were kept as JSONL (modelops:monitor.feedback_file): read by
    `modelops labels add` and by older callers; the label store (labels_db) is what monitoring reads."""
    return _in_project(settings.monitor.feedback_file)


def prediction_log_env(
    monitor: MonitorSettings, directory: str, replica: str, synthetic_secret: str | None = None
) -> dict[str, str]:
    """Where and how much a replica logs. ``directory`` is as the replica sees it; ``replica`` names its writers
    (stable across restarts, so the directory stays bounded); ``synthetic_secret`` is the deployment's, which a
    load generator's X-Modelops-Synthetic must carry to stay out of the log. A sample rate of 0 turns logging off."""
    if monitor.log_sample_rate == 0:
        return {}
    return {
        ENV_DIR: directory,
        ENV_SAMPLE_RATE: repr(monitor.log_sample_rate),
        ENV_MAX_BYTES: str(monitor.log_max_bytes),
        ENV_BACKUPS: str(monitor.log_backups),
        ENV_QUEUE_BYTES: str(monitor.log_queue_bytes),
        ENV_RETENTION_S: repr(monitor.log_retention_s),
        ENV_REPLICA: replica,
        **({ENV_SYNTHETIC_SECRET: synthetic_secret} if synthetic_secret else {}),
    }
