"""The bento's container image, built and run for real with Docker, as the kind stack runs it (its environment, CPU
budget, workers, uid 1034, read-only root filesystem, `bentoml serve` flags) and as the aws boot script runs it
(the same `docker run` flags, /tmp a bounded tmpfs).

The image: BentoML's containerize with bento/Dockerfile.template (two stages, no compilers), on a Debian bookworm
base made with debootstrap (no registry reachable here; elsewhere python:3.11-slim). Two containers behind HAProxy
serve predictions; one gets SIGTERM under load and drains with zero failed requests. A user's own model, built
through the template, is containerized and served the same way.

Slow the first time on a machine (the base: debootstrap, minutes; the packages: about a minute); warm runs reuse the
base image and Docker's layer cache (seconds). Measured figures go to stdout (`pytest -s`) and stacks/RUNNING.md.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.targets.local.procs import free_port
from modelops.waiting import wait_until
from stacks import images
from stacks.cache import cache_env
from stacks.config import StackConfig, load_stack_config
from stacks.kind.model_service import BENTO_UID
from stacks.threads import thread_env
from tests.stacks.docker_engine import (
    PREFIX,
    BaseImages,
    BuiltImage,
    base_images,
    containerize,
    docker,
    image_size_mb,
    run_engine,
)

pytestmark = pytest.mark.exclusive  # builds with the Docker engine, CPU-heavy: runs alone (make test's second phase)

MAX_IMAGE_MB = 500  # the goal the issue sets (BentoML's default template made 1.37 GB)
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
ROWS = [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]
BOOT_SCRIPT = Path(__file__).resolve().parents[2] / "stacks" / "aws" / "user_data.sh"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from (None for _ in run_engine(tmp_path_factory.mktemp("docker")))


@pytest.fixture(scope="module")
def base(engine: None) -> BaseImages:
    found = base_images()
    print(f"\nbase images {found.runtime}, {found.build}: {found.seconds:.1f} s (0 when cached)")
    return found


@pytest.fixture(scope="module")
def built(base: BaseImages, reference_bento: str) -> Iterator[BuiltImage]:
    image = containerize(reference_bento, base, "wine")
    print(f"\ncontainerize {reference_bento}: {image.seconds:.1f} s, {image_size_mb(image.image):.0f} MB")
    yield image
    docker("image", "rm", "--force", image.image, check=False)


@pytest.fixture(scope="module")
def kind_settings() -> StackConfig:
    return load_stack_config("kind")


def stack_run_args(settings: StackConfig, service: str) -> list[str]:
    """`docker run` options that give the container what both stacks give it: the aws boot script's hardening and
    the kind pod's environment and CPU budget."""
    deploy, timeout = settings.deploy, settings.limits.request_timeout_s
    env = {
        "BENTOML_CONFIG_OVERRIDES": images.bentoml_overrides(service, deploy.workers, timeout),
        "MODELOPS_MAX_BODY_BYTES": str(settings.limits.max_body_bytes),
        **thread_env(deploy.cpu_per_replica / deploy.workers),
        **cache_env(settings.cache),
    }
    return [
        "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--cpus", str(deploy.cpu_per_replica), "--memory", f"{deploy.memory_mb}m",
        "--stop-timeout", str(int(timeout) + 5),
        *(f"--env={k}={v}" for k, v in sorted(env.items())),
    ]  # fmt: skip


class Container:
    def __init__(self, image: str, name: str, run_args: list[str], serve_args: list[str]) -> None:
        self.name = f"{PREFIX}{name}-{free_port()}"
        self.port = free_port()
        docker("rm", "--force", self.name, check=False)
        self.started = time.monotonic()
        docker("run", "--detach", "--name", self.name, "--publish", f"127.0.0.1:{self.port}:3000",
               *run_args, image, *serve_args)  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                return answer.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_ready(self, timeout: float = 180) -> float:
        if not wait_until(self.ready, timeout=timeout, interval=0.2):
            raise AssertionError(f"{self.name} not ready in {timeout:g} s:\n{self.logs()}")
        return time.monotonic() - self.started

    def logs(self) -> str:
        done = docker("logs", self.name, check=False)
        return (done.stdout + done.stderr)[-4000:]

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        return docker("exec", self.name, *command, check=False)

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)


def predict(url: str, timeout: float = 30) -> tuple[int, object]:
    request = urllib.request.Request(
        f"{url}/predict", data=json.dumps({"rows": ROWS}).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:200]
    except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
        return 0, str(exc)


@pytest.fixture(scope="module")
def pool(built: BuiltImage, kind_settings: StackConfig) -> Iterator[list[Container]]:
    """Two replicas of the image as the kind stack runs them (only the image's own /tmp volume is writable)."""
    service = built.bento.partition(":")[0]
    run_args = stack_run_args(kind_settings, service)
    serve = images.serve_args(kind_settings.limits.request_timeout_s)
    containers = [Container(built.image, f"replica{i}", run_args, serve) for i in range(2)]
    try:
        for container in containers:
            print(f"\n{container.name} ready {container.wait_ready():.1f} s after `docker run`")
        yield containers
    finally:
        for container in containers:
            container.remove()


# ----------------------------------------------------------------------------------------------- the image


def test_the_image_fits_its_size_budget_and_runs_as_the_bento_user(built: BuiltImage) -> None:
    size = image_size_mb(built.image)
    assert size <= MAX_IMAGE_MB, f"{built.image} is {size:.0f} MB, over {MAX_IMAGE_MB} MB"
    config = json.loads(docker("image", "inspect", built.image, "--format", "{{json .Config}}").stdout)
    assert config["User"] == "bentoml"
    assert "/tmp" in (config.get("Volumes") or {}), "the image declares its writable mount itself"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert (env["HOME"], env["BENTOML_HOME"]) == ("/tmp", "/tmp/bentoml")


def test_the_image_has_no_compiler_and_not_this_machine_s_ca_bundle(built: BuiltImage) -> None:
    """The build stage reached PyPI through this machine's TLS proxy with its CA bundle: none of it ships."""
    config = json.loads(docker("image", "inspect", built.image, "--format", "{{json .Config}}").stdout)
    assert not [e for e in config["Env"] if e.startswith(("PIP_CERT=", "SSL_CERT_FILE=", "REQUESTS_CA_BUNDLE="))]
    host_hash = hashlib.sha256(HOST_CA.read_bytes()).hexdigest()
    probe = ("for f in /etc/ssl/certs/*.crt; do sha256sum \"$f\"; done; "
             "command -v gcc cc git || true")  # fmt: skip
    done = docker("run", "--rm", "--entrypoint", "sh", built.image, "-c", probe)
    assert host_hash not in done.stdout, f"this machine's CA bundle is in the image:\n{done.stdout}"
    assert "modelops-build-ca" not in done.stdout
    assert not [
        line for line in done.stdout.splitlines() if line.startswith("/") and line.endswith(("gcc", "cc", "git"))
    ]


# ----------------------------------------------------------------------------------------------- as the stacks run it


def test_a_replica_serves_predictions_read_only_as_uid_1034_within_its_cpu_budget(
    pool: list[Container], kind_settings: StackConfig
) -> None:
    replica = pool[0]
    status, body = predict(replica.url)
    assert status == 200 and isinstance(body, list) and len(body) == len(ROWS), body
    assert replica.exec("id", "-u").stdout.strip() == str(BENTO_UID)
    # The bento user's own home: writable by it, but the root filesystem is read-only.
    read_only = replica.exec("touch", "/home/bentoml/probe")
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stderr
    # The service's code and model are root's: not even a writable root filesystem would let it change them.
    assert "Permission denied" in replica.exec("touch", "/home/bentoml/bento/src/service.py").stderr
    assert replica.exec("touch", "/tmp/bentoml/probe").returncode == 0, "its /tmp volume is writable"
    inspected = json.loads(docker("inspect", replica.name, "--format", "{{json .HostConfig}}").stdout)
    assert inspected["ReadonlyRootfs"] is True
    assert inspected["NanoCpus"] == int(kind_settings.deploy.cpu_per_replica * 1e9)
    assert "Read-only file system" not in replica.logs() and "Permission denied" not in replica.logs()


def test_the_aws_boot_script_s_docker_run_flags_serve_too(built: BuiltImage, kind_settings: StackConfig) -> None:
    """The aws instances add a bounded tmpfs over /tmp and the stack's environment (stacks/aws/user_data.sh)."""
    boot = BOOT_SCRIPT.read_text()
    assert "--read-only --tmpfs /tmp:rw,nosuid,nodev,size=512m" in boot and "--cap-drop ALL" in boot
    service = built.bento.partition(":")[0]
    run_args = ["--tmpfs", "/tmp:rw,nosuid,nodev,size=512m", *stack_run_args(kind_settings, service)]
    replica = Container(built.image, "aws", run_args, images.serve_args(kind_settings.limits.request_timeout_s))
    try:
        replica.wait_ready()
        assert predict(replica.url)[0] == 200
    finally:
        replica.remove()


HAPROXY = """global
    maxconn 512
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    retries 3
    retry-on conn-failure empty-response junk-response response-timeout
    option http-buffer-request
    option redispatch 1
frontend front
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance leastconn
    option httpchk GET /readyz
    default-server check inter 500ms fastinter 250ms fall 2 rise 2 observe layer4 error-limit 1
{servers}
"""


@pytest.fixture
def haproxy(pool: list[Container], tmp_path: Path) -> Iterator[str]:
    port = free_port()
    servers = "\n".join(f"    server {c.name} 127.0.0.1:{c.port}" for c in pool)
    config = tmp_path / "haproxy.cfg"
    config.write_text(HAPROXY.format(port=port, servers=servers))
    process = subprocess.Popen(["haproxy", "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: predict(url, timeout=2)[0] == 200, timeout=30, interval=0.2), "HAProxy not serving"
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_replica_drains_on_sigterm_behind_haproxy_with_zero_failed_requests(
    pool: list[Container], haproxy: str
) -> None:
    stop = threading.Event()
    results: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            status, _ = predict(haproxy)
            with lock:
                results.append(status)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as clients:
        for _ in range(8):
            clients.submit(client)
        assert wait_until(lambda: len(results) >= 50, timeout=60, interval=0.1)
        before = len(results)
        started = time.monotonic()
        docker("stop", "--signal", "TERM", "--time", "30", pool[0].name, timeout=60)  # SIGTERM, then its drain
        drained_s = time.monotonic() - started
        assert wait_until(lambda: len(results) >= before + 200, timeout=60, interval=0.1)
        stop.set()
    failed = [s for s in results if s != 200]
    print(f"\nSIGTERM drain: {len(results)} requests through HAProxy ({len(results) - before} after the signal), "
          f"{len(failed)} failed; `docker stop` returned after {drained_s:.1f} s")  # fmt: skip
    assert not failed, f"{len(failed)} of {len(results)} requests failed across the drain: {sorted(set(failed))}"
    state = json.loads(docker("inspect", pool[0].name, "--format", "{{json .State}}").stdout)
    assert state["Status"] == "exited" and state["ExitCode"] == 0, f"did not exit cleanly: {state}"


# ----------------------------------------------------------------------------------------------- a user's model


@pytest.fixture(scope="module")
def user_image(base: BaseImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BuiltImage, list, list]]:
    """A user's own model, not ours: scikit-learn gradient boosting on the breast-cancer set, saved with BentoML and
    built through the platform's template (`modelops build --model`), then containerized like the reference."""
    from modelops import modelbuild
    from tests.modelops.test_modelbuild import MODELS, saved

    load, fit, save, _task = MODELS["cancer_gb"]
    tag, x_test, reference, model = saved("cancer_gb", load(), fit, save, tmp_path_factory.mktemp("user"))
    made = modelbuild.build_model(tag, reference=reference, record=False)
    image = containerize(made.bento, base, "user")
    print(f"\ncontainerize {made.bento}: {image.seconds:.1f} s, {image_size_mb(image.image):.0f} MB")
    rows = x_test[:20]
    expected = [made.metadata["classes"][i] for i in model.predict_proba(rows).argmax(axis=1)]
    assert made.metadata["acceleration"]["chosen"] == "onnxruntime", "the image must carry the compiled model's runtime"
    yield image, expected, rows.tolist()
    docker("image", "rm", "--force", image.image, check=False)


def test_a_users_model_built_through_the_template_serves_its_own_answers_from_its_image(
    user_image: tuple[BuiltImage, list, list], kind_settings: StackConfig
) -> None:
    built, expected, rows = user_image
    assert image_size_mb(built.image) <= MAX_IMAGE_MB
    service = built.bento.partition(":")[0]
    replica = Container(built.image, "user", stack_run_args(kind_settings, service),
                        images.serve_args(kind_settings.limits.request_timeout_s))  # fmt: skip
    try:
        print(f"\n{replica.name} ready {replica.wait_ready():.1f} s after `docker run`")
        request = urllib.request.Request(f"{replica.url}/predict", data=json.dumps({"rows": rows}).encode(),
                                         headers={"content-type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as answer:
            served = json.loads(answer.read())
        assert [p["label"] for p in served] == expected, served[:3]
        runtime = replica.exec("python", "-c", "import onnxruntime as o; print(o.get_available_providers())")
        assert "CPUExecutionProvider" in runtime.stdout, runtime.stderr
        assert replica.exec("id", "-u").stdout.strip() == str(BENTO_UID)
        assert "Read-only file system" in replica.exec("touch", "/home/bentoml/probe").stderr
    finally:
        replica.remove()


# ----------------------------------------------------------------------------------------------- the scripts


@pytest.mark.parametrize("target", ["kind", "aws"])
def test_both_stacks_build_this_image(target: str) -> None:
    """stacks/<target>/image.sh containerizes through the same script as these tests, with the bento's template."""
    script = (BOOT_SCRIPT.parents[1] / target / "image.sh").read_text()
    assert 'stacks/container/containerize.sh "$bento"' in script
    assert '"$bentoml" containerize' not in script, "a direct containerize would skip the template's workaround"
    bentofile = (BOOT_SCRIPT.parents[2] / "bento" / "bentofile.yaml").read_text()
    assert "dockerfile_template: Dockerfile.template" in bentofile


def test_the_container_scripts_pass_shellcheck() -> None:
    scripts = sorted((BOOT_SCRIPT.parents[1] / "container").glob("*.sh"))
    assert len(scripts) == 2
    done = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
