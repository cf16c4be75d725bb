"""The local target: `bentoml serve` replicas behind one HAProxy on loopback (target), the HAProxy configuration
and runtime API (haproxy), the processes it starts and stops (procs) and their CPU budgets (cgroups)."""

from modelops.targets.local.target import LocalTarget

__all__ = ["LocalTarget"]
