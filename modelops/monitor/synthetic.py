"""The synthetic-traffic secret: who may keep requests out of the prediction log.

Load the deployment makes itself (the gate's suites, the quality replay, benchmarks) is marked with the
``X-Modelops-Synthetic`` header so that drift and quality see only what clients send. A marker anyone can send would
let any client hide its traffic from them, so the marker counts only when it carries a secret made per deployment:

* made at ``up`` (:func:`create`), kept in the stack's directory as ``synthetic.secret`` (0600), handed to the
  replicas in their environment (``MODELOPS_SYNTHETIC_SECRET``) and to the load generators the gate starts
  (:func:`marking`, :func:`load_env`);
* **the service checks it** (bento/prediction_log.py: ``identify``, constant-time comparison): a request whose
  marker is missing or wrong is logged like any client's. This is the one check that holds on every target and on
  every path to a replica (through the balancer, a pool's own URL, a replica's port, a pod's IP);
* HAProxy strips the header unless it carries the secret (modelops/targets/local/haproxy.py), as defence in depth:
  a wrong marker never reaches a replica at all, and a replica started without the secret still logs everything;
* the aws ALB refuses the marker on its public listener (stacks/aws/load_balancer.py): clients of the public entry
  point have no business sending it; the gate's loads reach the pools through the test listeners;
* kind: a NetworkPolicy or an Ingress cannot rewrite headers; the service's check is the control there.

Without a secret (kind/aws until one is wired into their replicas' environment) no request is synthetic: the load
generators' traffic is logged, which is noise in the drift window, never a hiding place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bento.prediction_log import ENV_SYNTHETIC_SECRET, SYNTHETIC_HEADER
from stacks.config import StackConfig
from stacks.predictions import stack_dir

SECRET_FILE = "synthetic.secret"
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def create(directory: Path) -> str:
    """A fresh secret for a new deployment, written to ``directory``/synthetic.secret with mode 0600."""
    secret = secrets.token_urlsafe(32)  # 256 bits; URL-safe characters only (it goes into HAProxy's config as is)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SECRET_FILE
    tmp = directory / f".{SECRET_FILE}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.replace(tmp, path)
    return secret


def read(directory: Path) -> str | None:
    """The deployment's secret, or None when there is none (not deployed, or a target that has no secret)."""
    try:
        secret = (directory / SECRET_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return secret if valid(secret) else None


def valid(secret: str) -> bool:
    return len(secret) >= 32 and _ALPHABET.issuperset(secret)


def for_stack(settings: StackConfig) -> str | None:
    return read(stack_dir(settings))


def remove(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / SECRET_FILE).unlink()


def headers(secret: str | None) -> dict[str, str]:
    """Request headers that mark a request synthetic (none without a secret: the marker would mean nothing)."""
    return {SYNTHETIC_HEADER: secret} if secret else {}


def load_env(secret: str | None) -> dict[str, str]:
    """Environment of a load generator (loadtests/locustfile.py reads it) that marks its requests synthetic."""
    return {ENV_SYNTHETIC_SECRET: secret} if secret else {}


def marking(runner: Callable[..., Any], secret: str | None) -> Callable[..., Any]:
    """A load runner (loadgen.run's signature) whose loads carry the secret to the Locust processes."""
    if not secret:
        return runner

    def run(url: str, spec: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(spec, "traffic", "synthetic") == "synthetic":
            spec = replace(spec, extra_env={**spec.extra_env, **load_env(secret)})
        return runner(url, spec, *args, **kwargs)

    return run
