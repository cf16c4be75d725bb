"""The bento's container image, as both stacks build it: shared by stacks/aws and stacks/kind.

Each stack runs a shell script (stacks/<target>/image.sh) through ``pulumi_command.local.Command`` on the machine
that runs ``pulumi up``: it resolves the bento, runs ``bentoml containerize`` and makes the image reachable (kind:
``kind load docker-image``; aws: ``docker push`` to ECR). The script's last stdout line is one JSON object,
``{"bento": ..., "service": ..., "image": ...}``, which :func:`parse_build_output` reads.

``python -m stacks.images resolve [TAG]`` prints ``<bento tag> <entry service>``: the given tag, or the newest
bento in the store when TAG is empty. Importing this module creates no resources and needs no Pulumi engine.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent  # stacks/<target>/image.sh live here


@dataclass(frozen=True)
class ImageBuild:
    bento: str  # name:version
    service: str  # the bento's entry service: the key BentoML's per-service config overrides use
    image: str  # the reference the cluster / instances run


def script(target: str) -> str:
    """The text of stacks/<target>/image.sh."""
    return (SCRIPTS_DIR / target / "image.sh").read_text()


def parse_build_output(stdout: str) -> ImageBuild:
    lines = [line for line in (stdout or "").strip().splitlines() if line.strip()]
    try:
        data = json.loads(lines[-1])
        return ImageBuild(bento=str(data["bento"]), service=str(data["service"]), image=str(data["image"]))
    except (IndexError, json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(
            f"the image build printed no JSON line with bento, service and image (got {stdout!r}): "
            "see the command's output above"
        ) from None


def resolve(tag: str) -> tuple[str, str]:
    """(tag, entry service) of bento ``tag``, or of the newest bento in the store when ``tag`` is empty."""
    import bentoml

    if tag:
        bento = bentoml.get(tag)
    else:
        bentos = sorted(bentoml.list(), key=lambda b: b.info.creation_time)
        if not bentos:
            raise SystemExit("no bento in the BentoML store: run `modelops build` first, or set modelops:bento")
        bento = bentos[-1]
    return str(bento.tag), bento.info.entry_service


def bentoml_overrides(service: str, workers: int, timeout_s: float) -> str:
    """The BENTOML_CONFIG_OVERRIDES value that runs ``service`` with the stack's workers and request timeout.

    BentoML 1.4 applies this JSON over the service decorator's settings (defaults < config file < overrides), so
    the stack sizes a replica without rebuilding the bento.
    """
    timeout = int(timeout_s) if float(timeout_s).is_integer() else timeout_s
    return json.dumps(
        {"services": {service: {"workers": workers, "traffic": {"timeout": timeout}}}}, separators=(",", ":")
    )


KEEP_ALIVE_MARGIN_S = 5


def balancer_idle_timeout_s(request_timeout_s: float) -> int:
    """The load balancer's idle timeout: AWS's default 60 s, and never shorter than the slowest request the server
    may still be answering."""
    return max(60, math.ceil(request_timeout_s) + 5)


def server_keep_alive_s(request_timeout_s: float) -> int:
    """How long the server keeps an idle client connection open. Longer than the balancer's idle timeout, so the
    balancer always closes first: uvicorn's default (5 s) closes connections the ALB is about to reuse, and the
    ALB answers those requests 502."""
    return balancer_idle_timeout_s(request_timeout_s) + KEEP_ALIVE_MARGIN_S


def serve_args(request_timeout_s: float) -> list[str]:
    """Arguments of a containerized bento: its entrypoint turns leading flags into `bentoml serve FLAGS BENTO`."""
    return ["--timeout-keep-alive", str(server_keep_alive_s(request_timeout_s))]


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] != "resolve":
        raise SystemExit("usage: python -m stacks.images resolve [TAG]")
    print(*resolve(sys.argv[2] if len(sys.argv) == 3 else ""))
