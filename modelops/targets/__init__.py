"""Target drivers: one interface (base.Target), three implementations (local, kubernetes, aws).

:func:`open_target` builds the driver for a stack. The local target is run by modelops itself; the kind and aws
targets are made by `pulumi up -s <stack>`, and their drivers find the deployment through the stack outputs: a
file of ``pulumi stack output --json -s <stack>`` (``--outputs FILE``, or the ``MODELOPS_OUTPUTS`` environment
variable), else the Pulumi CLI itself.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelops.errors import MissingToolError, UsageError
from modelops.targets.base import Target, TargetStatus
from stacks import outputs as keys
from stacks.config import StackConfig
from stacks.names import COLOURS

OUTPUTS_ENV = "MODELOPS_OUTPUTS"  # default for --outputs, so `status`, `rollback`, `history` find it too


def open_target(
    settings: StackConfig,
    progress: Callable[[str], None] | None = None,
    outputs_file: Path | str | None = None,
    candidate_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Target:
    """The driver for the stack's target; with ``candidate_url``, one whose candidate pool is reached there."""
    outputs = None if settings.target == "local" else stack_outputs(settings, outputs_file, environ)
    return _open(settings, progress, outputs, candidate_url)


def open_gate_target(
    settings: StackConfig,
    progress: Callable[[str], None] | None = None,
    outputs_file: Path | str | None = None,
    candidate_url: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Target:
    """:func:`open_target`, refusing a kind/aws stack whose candidate pool this machine cannot load on its own.

    The gate loads the candidate alone while live traffic stays on the other pool. On aws the live listener
    reaches a pool alone only at 100 % weight, and on kind a pool's own Service name resolves only inside the
    cluster: the stack's ``pool_urls`` output (or ``--url``) is the way in from here."""
    outputs = None if settings.target == "local" else stack_outputs(settings, outputs_file, environ)
    if outputs is not None and candidate_url is None:
        require_pool_urls(settings, outputs)
    return _open(settings, progress, outputs, candidate_url)


def stack_outputs(
    settings: StackConfig, outputs_file: Path | str | None = None, environ: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """The kind/aws stack's outputs: from ``outputs_file``, else $MODELOPS_OUTPUTS, else the Pulumi CLI."""
    from modelops.targets.outputs import load_outputs, pulumi_outputs

    required = _required_outputs(settings.target)
    chosen = outputs_file or environ.get(OUTPUTS_ENV)
    if chosen:
        return load_outputs(Path(chosen), required, stack=settings.stack)
    try:
        return pulumi_outputs(settings.stack, required)
    except MissingToolError as exc:
        raise MissingToolError(
            f"stack {settings.stack!r} targets {settings.target}: modelops finds its deployment in the stack "
            f"outputs, and {exc}. Pass that file with --outputs FILE (or set {OUTPUTS_ENV}=FILE)"
        ) from None


def require_pool_urls(settings: StackConfig, outputs: dict[str, Any]) -> None:
    pool_urls = outputs.get(keys.POOL_URLS) or {}
    if all(pool_urls.get(colour) for colour in COLOURS):
        return
    if settings.target == "aws":
        why = (
            "the aws stack has no per-colour test listeners (stack output pool_urls is empty because "
            f"modelops:aws.test_cidrs is empty in stacks/Pulumi.{settings.stack}.yaml), and the live listener "
            "reaches a pool alone only when it takes all the traffic. List this machine's address in "
            f"modelops:aws.test_cidrs and run `pulumi up -s {settings.stack}`, then export the outputs again"
        )
    else:
        why = (
            "the kind stack's outputs have no pool_urls (a stack made before the per-colour NodePorts), and a "
            f"pool's own Service resolves only inside the cluster. Run `pulumi up -s {settings.stack}` (it "
            "re-creates the kind cluster with the per-colour host ports), then export the outputs again"
        )
    raise UsageError(
        f"the gate cannot reach the candidate pool from this machine: {why}; or pass --url URL, where the "
        "candidate pool (the colour that is not live) answers on its own"
    )


def check_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"--url must look like http(s)://HOST[:PORT] (the candidate pool's base URL), got {url!r}")
    return url.rstrip("/")


class CandidateUrl:
    """A target whose candidate pool the gate loads at a URL given on the command line (``modelops gate --url``):
    ``status().candidate.url`` is that URL; everything else, reads and writes, goes to the wrapped driver."""

    def __init__(self, target: Target, url: str) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_url", check_url(url))

    def status(self) -> TargetStatus:
        status = self._target.status()
        candidate = status.candidate
        if candidate is None:
            return status
        return replace(status, pools={**status.pools, candidate.colour: replace(candidate, url=self._url)})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # The gate hands the driver a progress callback by assignment: it must reach the driver.
        setattr(self._target, name, value)


def _open(
    settings: StackConfig,
    progress: Callable[[str], None] | None,
    outputs: dict[str, Any] | None,
    candidate_url: str | None,
) -> Target:
    target = _driver(settings, progress, outputs)
    return CandidateUrl(target, candidate_url) if candidate_url else target


def _driver(
    settings: StackConfig,
    progress: Callable[[str], None] | None,
    outputs: dict[str, Any] | None,
) -> Target:
    if settings.target == "local":
        from modelops.targets.local import LocalTarget

        return LocalTarget(settings, progress=progress or (lambda _m: None))
    assert outputs is not None
    if settings.target == "aws":
        import boto3

        from modelops.targets.aws import AwsTarget

        # Credentials from the environment (profile, SSO, instance role …); the region is the stack's.
        return AwsTarget(outputs, boto3.Session(region_name=settings.aws.region))
    from modelops.targets.kubernetes import KubernetesTarget

    # The stack's context (kube_context output) in the stack's kubeconfig, else in the client's default ($KUBECONFIG,
    # else ~/.kube/config), where `kind create cluster` writes it.
    kubeconfig = os.path.expanduser(settings.kind.kubeconfig) if settings.kind.kubeconfig else None
    return KubernetesTarget.from_kubeconfig(outputs, kubeconfig=kubeconfig)


def _required_outputs(target: str) -> tuple[str, ...]:
    if target == "aws":
        from modelops.targets.aws import REQUIRED_OUTPUTS
    else:
        from modelops.targets.kubernetes import REQUIRED_OUTPUTS
    return REQUIRED_OUTPUTS
