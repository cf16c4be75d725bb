"""The resource sampler on real processes (a parent and the child it forks, as a replica and its worker), its
summaries, and the robust trend it reads."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import psutil
import pytest

from modelops.monitor import resources
from modelops.monitor.resources import MB, Sample, Sampler
from modelops.waiting import wait_until

# A "replica": a parent that forks a worker; the worker holds 40 MB and opens 5 files when it reads a line on stdin.
TREE = textwrap.dedent(
    """
    import os, sys, time
    pid = os.fork()
    if pid == 0:
        sys.stdin.readline()
        kept = [b"x" * (40 * 2**20)]
        files = [open(os.devnull) for _ in range(5)]
        print("grown", flush=True)
        time.sleep(60)
        os._exit(0)
    print(pid, flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def replica() -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait(timeout=10)


def tree(pid: int) -> resources.Finder:
    def find() -> dict[str, tuple[int, list[psutil.Process]]]:
        leader = psutil.Process(pid)
        return {"blue-1": (pid, [leader, *leader.children(recursive=True)])}

    return find


def test_a_sample_sums_memory_and_open_files_over_the_whole_process_tree(replica) -> None:
    assert replica.stdout is not None and replica.stdin is not None
    worker = int(replica.stdout.readline())
    before = resources.read(tree(replica.pid))
    replica.stdin.write("grow\n")
    replica.stdin.flush()
    assert psutil.Process(worker).is_running()
    assert wait_until(lambda: resources.read(tree(replica.pid))[0].rss_bytes > before[0].rss_bytes + 30 * MB, 10)
    after = resources.read(tree(replica.pid))
    (b,), (a,) = before, after
    assert (a.replica, a.pid, a.processes) == ("blue-1", replica.pid, 2), "the parent and its worker"
    assert a.rss_bytes - b.rss_bytes >= 35 * MB, "the worker's 40 MB count in the replica's RSS"
    assert a.fds - b.fds >= 5 and a.most_fds >= 5
    assert a.fd_limit is None or a.fd_limit >= a.most_fds


def test_the_sampler_samples_in_the_background_until_stopped(replica) -> None:
    with Sampler(tree(replica.pid), interval=0.1) as sampler:
        assert wait_until(lambda: len(sampler.samples) >= 3, timeout=10)
    taken = len(sampler.samples)
    assert taken >= 3 and sampler.errors == []
    assert len(sampler.samples) == taken, "nothing sampled after stop"


def test_a_target_without_processes_gives_no_finder_and_an_idle_sampler() -> None:
    class Remote:  # kind, aws: pods and instances, no replica_processes
        name = "aws"

    assert resources.pool_processes(Remote(), "candidate") is None
    assert Sampler(None).start().stop() == []


def test_a_summary_gives_each_replica_process_its_own_series() -> None:
    samples = [
        Sample(t=100 + i, replica="green-1", pid=pid, rss_bytes=(200 + i) * MB, fds=30 + i, processes=2,
               most_fds=20 + i, fd_limit=1024)
        for pid, span in ((11, range(0, 5)), (12, range(5, 10)))  # restarted at 105 s: a new pid, a new series
        for i in span
    ]  # fmt: skip
    usage = resources.summarise(samples)
    assert [(u.replica, u.pid, u.samples) for u in usage] == [("green-1", 11, 5), ("green-1", 12, 5)]
    first = usage[0]
    assert (first.rss_mb_first, first.rss_mb_last, first.rss_mb_max) == (200, 204, 204)
    assert (first.fds_first, first.fds_last, first.fd_limit) == (30, 34, 1024)
    assert first.series[0] == [0.0, 200.0, 30.0] and usage[1].series[0][0] == 5.0, "seconds since the span began"


def test_the_trend_is_robust_to_outliers_and_gives_an_interval() -> None:
    xs = [float(i) for i in range(60)]
    ys = [100 + 0.5 * x for x in xs]
    ys[10] += 50  # a garbage collection's spike, a burst of connections
    trend = resources.growth(xs, ys)
    assert trend is not None and trend.slope == pytest.approx(0.5) and trend.low <= 0.5 <= trend.high
    flat = resources.growth(xs, [100.0] * 60)
    assert flat is not None and (flat.slope, flat.low, flat.high) == (0.0, 0.0, 0.0), "a tied series: [0, 0]"
    assert resources.growth([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) is None, "fewer than 3 distinct points"


def test_hours_until_a_limit() -> None:
    assert resources.hours_until(1000, 400, 100) == 6
    assert resources.hours_until(1000, 400, 0) == math.inf
    assert resources.hours_until(1000, 1200, 100) == 0
