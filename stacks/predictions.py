"""The prediction log's settings as a replica's environment: one function for every target (the local target sets
it per replica; the kind Deployment and the aws boot script can carry the same variables)."""

from __future__ import annotations

from pathlib import Path

from bento.prediction_log import ENV_BACKUPS, ENV_DIR, ENV_MAX_BYTES, ENV_REPLICA, ENV_SAMPLE_RATE
from stacks.config import PROJECT_ROOT, MonitorSettings, StackConfig


def prediction_log_dir(settings: StackConfig) -> Path:
    """Where the stack's replicas log (modelops:monitor.log_dir; a relative path is the project's)."""
    directory = Path(settings.monitor.log_dir)
    return directory if directory.is_absolute() else PROJECT_ROOT / directory


def feedback_file(settings: StackConfig) -> Path:
    """Where ground-truth labels for logged requests are kept (modelops:monitor.feedback_file)."""
    path = Path(settings.monitor.feedback_file)
    return path if path.is_absolute() else PROJECT_ROOT / path


def prediction_log_env(monitor: MonitorSettings, directory: str, replica: str) -> dict[str, str]:
    """Where and how much a replica logs. ``directory`` is as the replica sees it; ``replica`` names its writers
    (stable across restarts, so the directory stays bounded). A sample rate of 0 turns logging off."""
    if monitor.log_sample_rate == 0:
        return {}
    return {
        ENV_DIR: directory,
        ENV_SAMPLE_RATE: repr(monitor.log_sample_rate),
        ENV_MAX_BYTES: str(monitor.log_max_bytes),
        ENV_BACKUPS: str(monitor.log_backups),
        ENV_REPLICA: replica,
    }
