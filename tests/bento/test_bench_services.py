"""The benchmark bento on a real replica: the no-op floor is the production path without the model; a replica the
bench starts with limit_threads=False gets none of the thread variables (the OpenMP variant's "threads unset")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from modelops import bentos
from modelops.targets.local import LocalTarget, procs
from stacks.threads import THREAD_VARIABLES
from tests.conftest import local_settings


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory, reference_bento: str) -> Iterator[str]:
    """One replica of the benchmark bento, started with threads unset while this process has OMP_NUM_THREADS=7."""
    tag = bentos.build(bentofile="bentofile.bench.yaml", record=False)
    target = LocalTarget(local_settings(tmp_path_factory.mktemp("bench")), limit_threads=False)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMP_NUM_THREADS", "7")  # what the replica would otherwise inherit
            status = target.up(tag, replicas=1, workers=1)
        yield status.replicas[0].url
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == [], f"processes left behind by {target.dir}"


def post(url: str, endpoint: str, rows: list) -> httpx.Response:
    return httpx.post(url + endpoint, content=json.dumps({"rows": rows}), timeout=30,
                      headers={"content-type": "application/json"})  # fmt: skip


def environment(url: str) -> dict[str, str]:
    """The environment of the serving process listening on the replica's port."""
    port = int(url.rsplit(":", 1)[1])
    pid = next(c.pid for c in psutil.net_connections("tcp") if c.laddr.port == port and c.status == "LISTEN")
    return dict(line.split("=", 1) for line in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in line)


def test_the_no_op_floor_answers_like_predict_and_refuses_what_predict_refuses(replica, reference_bento) -> None:
    golden = bentos.describe(reference_bento).golden
    real, floor = post(replica, "/predict", golden["rows"]), post(replica, "/noop", golden["rows"])
    assert real.status_code == floor.status_code == 200, floor.text
    assert [set(p) for p in floor.json()] == [set(p) for p in real.json()], "same response fields"
    assert [set(p["probabilities"]) for p in floor.json()] == [set(p["probabilities"]) for p in real.json()]
    hostile = [[1e39, *golden["rows"][0][1:]]]  # finite, but beyond the float32 the model computes in
    refused = {endpoint: post(replica, endpoint, hostile) for endpoint in ("/predict", "/noop")}
    assert refused["/noop"].status_code == refused["/predict"].status_code == 422, refused["/noop"].text
    assert refused["/noop"].json() == refused["/predict"].json(), "the floor runs the same contract check"


def test_a_replica_started_with_threads_unset_inherits_none_of_the_thread_variables(replica) -> None:
    found = set(THREAD_VARIABLES) & set(environment(replica))
    assert not found, f"threads unset, yet the replica at {replica} has {found}"
