"""A Docker engine for the container tests, and the bento's image built on it.

The engine: the one already running, else `dockerd` started here as root (no systemd on these machines) and stopped
when the session ends. The daemon is machine-wide: every image and container these tests make is named
``modelops-test-*``.

The image: stacks/container/base_image.sh makes a Debian bookworm base with debootstrap (no registry can be pulled
here) once per machine (the Docker engine keeps it, under a tag that changes with the script), and
stacks/container/containerize.sh runs `bentoml containerize` with it as the base of both stages, the build stage
carrying this machine's CA bundle for pip (PyPI is reachable only through a TLS proxy). Docker's layer cache keeps
the installed packages between runs, so a warm build redoes only the bento's own layers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelops.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE_SCRIPT = ROOT / "stacks" / "container" / "base_image.sh"
CONTAINERIZE = ROOT / "stacks" / "container" / "containerize.sh"
PREFIX = "modelops-test-"
# Debian's docker.io 20.10 client; the image's own 28.x client talks to the same daemon but wants buildx for
# BuildKit, which Debian does not package. DOCKER_BUILDKIT=0 (legacy builder) works with either.
DOCKER = shutil.which("docker") or "/usr/bin/docker"


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Engine:
    started_here: bool
    log: Path | None


def run_engine(work: Path) -> Iterator[Engine]:
    """Yield a running engine; stop it afterwards if it was started here."""
    if engine_answers():
        yield Engine(started_here=False, log=None)
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.fail("no Docker engine: `make test` installs Debian's docker.io (dockerd); or install Docker Engine")
    if os.geteuid() != 0:
        pytest.fail("no Docker engine running, and starting dockerd needs root: run the tests as root or start it")
    log = work / "dockerd.log"
    with log.open("wb") as out:
        process = subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not wait_until(lambda: process.poll() is not None or engine_answers(), timeout=90, interval=0.5):
            pytest.fail(f"dockerd did not answer within 90 s:\n{log.read_text(errors='replace')[-2000:]}")
        if process.poll() is not None:
            pytest.fail(f"dockerd exited {process.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        yield Engine(started_here=True, log=log)
    finally:
        if process.poll() is None:
            process.terminate()  # dockerd stops its containers and shuts down cleanly on SIGTERM
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


@dataclass(frozen=True)
class BaseImages:
    runtime: str
    build: str
    seconds: float  # 0 when both were already there


def base_images() -> BaseImages:
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing: `make test` installs it (apt-get install debootstrap)")
    started = time.monotonic()
    done = subprocess.run(
        [str(BASE_IMAGE_SCRIPT), f"{PREFIX}base"], capture_output=True, text=True, timeout=1800, check=False
    )
    assert done.returncode == 0, f"base_image.sh failed:\n{done.stderr[-3000:]}"
    runtime, build = done.stdout.split()
    return BaseImages(runtime, build, time.monotonic() - started)


@dataclass(frozen=True)
class BuiltImage:
    bento: str
    image: str
    seconds: float
    log: str


def containerize(bento: str, base: BaseImages, image_name: str) -> BuiltImage:
    image = f"{PREFIX}{image_name}:{bento.partition(':')[2]}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "PATH": f"{Path(DOCKER).parent}:{os.environ['PATH']}"}
    started = time.monotonic()
    done = subprocess.run(
        [str(CONTAINERIZE), bento, image,
         "--opt", f"build-arg=MODELOPS_BUILD_IMAGE={base.build}",
         "--opt", f"build-arg=MODELOPS_RUNTIME_IMAGE={base.runtime}"],
        capture_output=True, text=True, timeout=1800, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"containerize {bento} failed:\n{(done.stdout + done.stderr)[-4000:]}"
    return BuiltImage(bento, image, time.monotonic() - started, done.stdout)


def image_size_mb(image: str) -> float:
    return int(docker("image", "inspect", image, "--format", "{{.Size}}").stdout.strip()) / 1e6
