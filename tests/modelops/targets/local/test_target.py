"""The local target on real processes: replicas behind HAProxy, failover, idempotent up/down, clear errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from modelops.errors import BentoNotFoundError, DeploymentError, MissingToolError, UsageError
from modelops.targets.local import LocalTarget, procs
from modelops.waiting import wait_until
from tests.conftest import local_settings
from tests.fixtures.faulty import build_faulty
from tests.traffic import Traffic


def example_body(url: str) -> dict:
    schema = httpx.get(url + "/docs.json").json()
    rows = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {"rows": rows["properties"]["rows"]["examples"][0]}


def test_up_starts_healthy_replicas_behind_the_load_balancer(make_target, reference_bento) -> None:
    status = make_target().up(reference_bento, replicas=2, workers=1)
    assert len(status.replicas) == 2
    assert all(r.healthy and r.pid for r in status.replicas), status.replicas
    assert status.bento == reference_bento
    response = httpx.post(status.url + "/predict", json=example_body(status.url))
    assert response.status_code == 200


def test_sigkill_of_one_of_two_replicas_loses_no_request_and_status_shows_it_down(make_target, reference_bento):
    target = make_target()
    status = target.up(reference_bento, replicas=2, workers=1)
    with Traffic(status.url, example_body(status.url), clients=8) as traffic:
        traffic.wait_for(200)
        killed = target.kill_replica(pool="live")
        traffic.wait_for(500)
    # Retries + redispatch must hide every request the dead replica had not started answering: no connection
    # error and no 5xx may reach a client. A response whose headers had already left when SIGKILL struck cannot
    # be retried by any proxy (the client has it half); a replica's one event loop writes one response at a time,
    # so at most one such truncated response per killed worker.
    truncated = traffic.cut_short
    assert dict(traffic.failures) == truncated, f"failures retries should have hidden: {dict(traffic.failures)}"
    assert sum(truncated.values()) <= 1, f"more truncated responses than one in-flight write: {truncated}"
    after = {r.name: r for r in target.status().replicas}
    assert after[killed.name].healthy is False
    assert [r.healthy for name, r in after.items() if name != killed.name] == [True]


def test_up_twice_with_the_same_arguments_keeps_the_running_deployment(make_target, reference_bento) -> None:
    target = make_target()
    first = target.up(reference_bento, replicas=1, workers=1)
    second = target.up(reference_bento, replicas=1, workers=1)
    assert [r.pid for r in second.replicas] == [r.pid for r in first.replicas]


def test_up_with_different_arguments_while_up_is_refused_with_the_fix(make_target, reference_bento) -> None:
    target = make_target()
    target.up(reference_bento, replicas=1, workers=1)
    with pytest.raises(UsageError, match="modelops down"):
        target.up(reference_bento, replicas=2, workers=1)


def test_down_twice_stops_everything_then_reports_nothing(make_target, reference_bento) -> None:
    target = make_target()
    status = target.up(reference_bento, replicas=1, workers=1)
    pids = [r.pid for r in status.replicas]
    assert target.down(), "first down reports what it stopped"
    assert target.down() == []
    assert not any(procs.is_alive(pid) for pid in pids)
    assert not target.state_file.exists()
    assert procs.marked_processes(target.deployment) == []


UP_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from modelops.targets.local import LocalTarget
    from tests.conftest import local_settings
    LocalTarget(local_settings(Path(sys.argv[1]))).up(sys.argv[2], replicas=2, workers=1)
    """
)


def test_down_after_an_up_killed_half_way_leaves_no_process_and_no_state(tmp_path, reference_bento) -> None:
    state_dir = tmp_path / "crashed"
    target = LocalTarget(local_settings(state_dir))
    up = subprocess.Popen([sys.executable, "-c", UP_SCRIPT, str(state_dir), reference_bento], cwd=Path.cwd())
    try:
        # Kill `up` once HAProxy and at least one replica run, long before both replicas are ready.
        started = wait_until(lambda: len(procs.marked_processes(target.deployment)) >= 2, timeout=30)
        assert started, "the up subprocess never started its processes"
    finally:
        up.send_signal(signal.SIGKILL)
        up.wait()
    assert procs.marked_processes(target.deployment), "the killed up left processes (the case under test)"
    stopped = target.down()
    assert stopped
    assert procs.marked_processes(target.deployment) == []
    assert not target.state_file.exists()


def test_status_without_a_deployment_says_how_to_start_one(make_target) -> None:
    with pytest.raises(Exception, match="modelops up --stack local"):
        make_target().status()


def test_a_taken_port_is_a_clear_error_naming_the_setting(make_target, reference_bento) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        target = make_target(local={"lb_port": port})
        with pytest.raises(DeploymentError, match=rf"port {port} .* in use.*modelops:local\.lb_port"):
            target.up(reference_bento, replicas=1, workers=1)
    assert procs.marked_processes(target.deployment) == []


def test_missing_haproxy_says_how_to_install_it(make_target, reference_bento, monkeypatch) -> None:
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    monkeypatch.setattr("modelops.tools.SYSTEM_DIRS", ())  # nor in the sbin directories looked in beside PATH
    with pytest.raises(MissingToolError, match="make setup"):
        make_target().up(reference_bento, replicas=1, workers=1)


def test_unknown_bento_says_how_to_build_one(make_target) -> None:
    with pytest.raises(BentoNotFoundError, match="modelops build"):
        make_target().up("no_such_bento:abc123", replicas=1, workers=1)


@pytest.fixture(scope="module")
def faulty_bento(tmp_path_factory, bentoml_home) -> str:
    return build_faulty(tmp_path_factory.mktemp("faulty"))


def test_a_replica_that_exits_at_start_is_reported_with_its_log(make_target, faulty_bento, monkeypatch) -> None:
    monkeypatch.setenv("MODELOPS_TEST_FAULT", "exit")
    target = make_target()
    with pytest.raises(DeploymentError, match=r"exited at start(.|\n)*boom: this replica refuses to start"):
        target.up(faulty_bento, replicas=1, workers=1)
    assert procs.marked_processes(target.deployment) == [], "a failed up stops what it started"
    assert not target.state_file.exists()


def test_a_replica_that_never_gets_ready_times_out_with_its_log(make_target, faulty_bento, monkeypatch) -> None:
    monkeypatch.setenv("MODELOPS_TEST_FAULT", "hang")
    target = make_target(local={"ready_timeout_s": 8})
    with pytest.raises(DeploymentError, match=r"not ready within 8 s(.|\n)*ready_timeout_s"):
        target.up(faulty_bento, replicas=1, workers=1)
    assert procs.marked_processes(target.deployment) == []


def test_status_json_from_another_process_lists_url_bento_and_replicas(make_target, reference_bento, tmp_path):
    target = make_target()
    status = target.up(reference_bento, replicas=2, workers=1)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    (stacks / "Pulumi.local.yaml").write_text(
        json.dumps({"config": {"modelops:target": "local", "modelops:local": {"state_dir": str(target.dir.parent)}}})
    )
    env = {**os.environ, "MODELOPS_STACKS_DIR": str(stacks)}
    done = subprocess.run(
        [sys.executable, "-m", "modelops.cli", "status", "--stack", "local", "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["url"] == status.url
    assert data["bento"] == reference_bento
    assert sorted(r["pid"] for r in data["replicas"]) == sorted(r.pid for r in status.replicas)
    assert all(set(r) >= {"url", "healthy", "pid"} and r["healthy"] for r in data["replicas"])


@pytest.mark.parametrize(("limit", "set_", "removed"), [(True, {"OMP_NUM_THREADS": "1"}, ()), (False, {}, True)])
def test_replica_thread_variables_follow_the_budget_unless_turned_off_for_the_bench(tmp_path, limit, set_, removed):
    from modelops.targets.local.target import PoolRecord
    from stacks.threads import THREAD_VARIABLES

    target = LocalTarget(local_settings(tmp_path), limit_threads=limit)
    pool = PoolRecord(colour="blue", bento="b:1", service="s", workers=1, cpu=0.5)
    threads, unset = target.thread_variables(pool)
    assert set_.items() <= threads.items() and (set(threads) == set(THREAD_VARIABLES) if limit else not threads)
    assert set(unset) == (set(THREAD_VARIABLES) if removed else set())


def test_spawn_leaves_out_the_unset_variables_of_its_own_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    shown = "import os; print(os.environ.get('OMP_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'))"
    logs = {}
    for unset in ((), ("OMP_NUM_THREADS",)):
        log = tmp_path / f"{len(unset)}.log"
        proc = procs.spawn([sys.executable, "-c", shown], deployment="spawn-test", log=log, unset=unset)
        assert wait_until(lambda pid=proc.pid: procs.exit_code(pid) is not None, timeout=20), "the child never ended"
        procs.reap()
        logs[unset] = log.read_text().strip()
    assert logs[()] == "7 7", "without unset a child inherits the variable"
    assert logs[("OMP_NUM_THREADS",)] == "None 7", "unset removes exactly the named variables"
