"""Both stacks run the bento with a read-only root filesystem as an unprivileged user, with only /tmp writable
(kind: readOnlyRootFilesystem, uid 1034, an emptyDir at /tmp; aws: `docker run --read-only --tmpfs /tmp`), HOME=/tmp
and BENTOML_HOME=/tmp/bentoml. This proves it on the bento itself, without a container: the built bento, copied and
made read-only, served by `bentoml serve` as uid 1034 whose only writable place is its own /tmp stand-in, answers
predictions (a BentoML precedent failed with EROFS writing models/<name>/latest). The container image the stacks
run is built and run the same way, read-only as uid 1034, by tests/stacks/test_container.py."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops import bentos
from modelops.targets.local.procs import free_port
from modelops.waiting import wait_until
from stacks.kind.model_service import BENTO_UID

ROOT = Path(__file__).resolve().parents[2]
BENTOML = Path(sys.executable).parent / "bentoml"
STACK_ENV = {"HOME": "/tmp", "BENTOML_HOME": "/tmp/bentoml"}  # what both stacks give the container


def test_both_stacks_give_the_container_only_tmp_as_home_and_bentoml_home() -> None:
    boot = (ROOT / "stacks" / "aws" / "user_data.sh").read_text()
    assert "--read-only --tmpfs /tmp:" in boot and "--env HOME=/tmp --env BENTOML_HOME=/tmp/bentoml" in boot
    pod = (ROOT / "stacks" / "kind" / "model_service.py").read_text()
    assert '{"name": "BENTOML_HOME", "value": "/tmp/bentoml"}' in pod and '{"name": "HOME", "value": "/tmp"}' in pod


def pack_models_as_containerize_does(bento: Path) -> None:
    """`bentoml containerize` (bentoml/_internal/container/__init__.py) copies the bento, then resolves each of its
    models from the model store into ``models/`` of the build context: the same calls, on the copy."""
    from _bentoml_sdk.models import BentoModel
    from bentoml._internal.bento.bento import BentoInfo

    with (bento / "bento.yaml").open("rb") as document:
        info = BentoInfo.from_yaml_file(document)
    models = bento / "models"
    models.mkdir(exist_ok=True)
    for model in info.all_models:
        BentoModel.from_info(model).resolve(models)


def as_bento_user(*command: str) -> list[str]:
    """``command`` as uid/gid 1034 with no groups. It keeps one capability, CAP_DAC_READ_SEARCH (read files and
    search directories regardless of their modes, never write): the Python interpreter may live under a 0700 home
    (pyenv in /root here), which the container's interpreter does not. Writing is what this check is about, and
    that stays limited to what uid 1034 may write."""
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    return ["setpriv", f"--reuid={BENTO_UID}", f"--regid={BENTO_UID}", "--clear-groups", *caps, *command]


@pytest.fixture
def read_only_bento(reference_bento: str) -> Iterator[tuple[Path, Path, dict]]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("this check switches to uid 1034 with setpriv: run the tests as root (as make test in CI does)")
    base = Path(tempfile.mkdtemp(prefix="modelops-ro-"))  # not under pytest's 0700 tmp dir: uid 1034 must enter
    try:
        base.chmod(0o755)
        info = bentos.describe(reference_bento)
        bento = base / "bento"
        shutil.copytree(info.path, bento)
        pack_models_as_containerize_does(bento)
        # Readable by everyone, writable by no one but root: as the image's files are to the bento user under a
        # read-only root filesystem (BentoML's build leaves some directories 0700: the image's COPY makes them the
        # bento user's, here they become world-readable instead).
        for path in [bento, *bento.rglob("*")]:
            if not path.is_symlink():
                executable = path.is_dir() or path.stat().st_mode & stat.S_IXUSR
                path.chmod(0o555 if executable else 0o444)
        tmp = base / "tmp"  # the container's /tmp: the only place the bento user may write
        tmp.mkdir()
        os.chown(tmp, BENTO_UID, BENTO_UID)
        yield bento, tmp, info.golden or {}
    finally:
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(base, ignore_errors=True)


def test_the_bento_copy_is_really_read_only_for_the_bento_user(read_only_bento) -> None:
    bento, tmp, _ = read_only_bento
    denied = subprocess.run(as_bento_user("touch", str(bento / "models" / "latest")), capture_output=True, timeout=30)
    assert denied.returncode != 0, "the bento copy is writable: the serving check below would prove nothing"
    allowed = subprocess.run(as_bento_user("touch", str(tmp / "probe")), capture_output=True, timeout=30)
    assert allowed.returncode == 0, allowed.stderr


def test_a_read_only_bento_serves_predictions_as_the_bento_user_with_only_tmp_writable(read_only_bento) -> None:
    bento, tmp, golden = read_only_bento
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),  # STACK_ENV with /tmp mapped to the stand-in
        "BENTOML_HOME": STACK_ENV["BENTOML_HOME"].replace("/tmp", str(tmp), 1),
        "BENTOML_DO_NOT_TRACK": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TMPDIR": str(tmp),
    }
    command = [str(BENTOML), "serve", str(bento), "--host", "127.0.0.1", "--port", str(port)]
    log = tmp.parent / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(as_bento_user(*command), env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)  # fmt: skip
        try:

            def ready() -> bool:
                if server.poll() is not None:
                    return True
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                        return answer.status == 200
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    return False

            assert wait_until(ready, timeout=120, interval=0.5), f"not ready in 120 s:\n{log.read_text()[-3000:]}"
            assert server.poll() is None, f"bentoml serve exited {server.returncode}:\n{log.read_text()[-3000:]}"
            rows = golden.get("rows") or [[13.2, 1.78, 2.14, 11.2, 100, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050]]
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/predict",
                data=json.dumps({"rows": rows}).encode(),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 200
                body = json.loads(answer.read())
            assert len(body) == len(rows)
            if golden.get("predicted"):
                assert [prediction["label"] for prediction in body] == golden["predicted"]
        finally:
            os.killpg(server.pid, 15)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, 9)
                server.wait(timeout=10)
    assert "Read-only file system" not in log.read_text() and "Permission denied" not in log.read_text()
