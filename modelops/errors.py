"""One exception tree and the exit codes a pipeline can branch on."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes. A distinct code per failed gate, so "p95 too slow" differs from "scaling too weak"."""

    OK = 0  # also: the candidate was promoted
    ERROR = 1  # an operation failed (a replica would not start, a port is taken …)
    USAGE = 2  # bad command line or invalid settings
    STACK_BUSY = 3  # another modelops command holds the stack's operation lock: wait for it, or retry later
    SMOKE_FAILED = 10
    SLO_FAILED = 11
    HORIZONTAL_FAILED = 12
    VERTICAL_FAILED = 13
    FAILOVER_FAILED = 14
    REGRESSION_FAILED = 15
    ROBUSTNESS_FAILED = 16  # a well-behaved request failed beside hostile ones, a hostile one got a 5xx, a replica died
    QUALITY_FAILED = 17  # on the live version's recent logged traffic, the candidate is less accurate or disagrees
    AUTOSCALE_FAILED = 18  # a request failed across autoscaling, the pool scaled out too late or never came back to min
    SOAK_FAILED = 19  # at the planned load for gate.soak_s: memory or open files run out too soon, or it slowed down
    INCONCLUSIVE = 20  # also: a drift check had too few logged rows to judge
    PLAN_FAILED = 21  # the capacity plan's own load (open-loop, deploy shape) missed the SLO
    DRIFT_DETECTED = 30  # `modelops drift`: logged inputs or predictions drifted from the training reference
    CANARY_ROLLED_BACK = 40  # the gate promoted, but the canary's live analysis breached: rolled back, live untouched
    BAKE_ROLLED_BACK = 41  # promoted, then the bake after the switch breached on client traffic: rolled back


class ModelopsError(Exception):
    """Base of every error modelops raises on purpose. ``str(err)`` says what happened and how to fix it."""

    exit_status = ExitStatus.ERROR


class UsageError(ModelopsError):
    exit_status = ExitStatus.USAGE


class MissingToolError(ModelopsError):
    """A program modelops drives (haproxy, locust …) is not installed."""


class BentoNotFoundError(ModelopsError):
    exit_status = ExitStatus.USAGE


class DeploymentError(ModelopsError):
    """Starting, stopping or changing a deployment failed."""


class NotDeployedError(ModelopsError):
    """The operation needs a running deployment and there is none."""
