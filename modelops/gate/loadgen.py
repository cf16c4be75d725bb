"""Run Locust headless as a subprocess (importing locust monkey-patches the process with gevent), watch the CPU of the
load generator and of the machine while it runs, and read back what every request did.

Figures come from the locustfile's own record of every request (outcome and latency in half-second windows, in the
meta file), so any span — the measured part after warm-up, one step of a step load, one second of a timeline — is
computed from that span alone; Locust's CSV, JSON and HTML reports stay in the output folder for people.

Why watch the CPU here: on a small machine the generator, the balancer and the replicas share the cores. A run in
which the generator could not keep up measures the generator, not the candidate. Locust's own CPU warning cannot
see that (it samples every 10 s, starts from a 0.0 baseline and looks at its own process only), so this module
samples the whole Locust process tree and the machine twice a second: CPU used, and time spent *waiting* for a CPU
(the kernel's run-queue delay, /proc/<pid>/schedstat) — a generator that is busy or waiting nearly all the time had
no slack left, whatever starved it (its own core, a CPU quota, the machine).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from modelops.errors import DeploymentError
from stacks.config import PROJECT_ROOT

LOCUSTFILE = PROJECT_ROOT / "loadtests" / "locustfile.py"
SAMPLE_INTERVAL_S = 0.5
PRODUCTION_KINDS = ("single", "batch")  # the user classes whose requests are the load being measured
# Requests whose failure is the candidate's, whatever load they belong to: every one counts as a request and as a
# failure (golden checks too: a broken answer to one is a failed request), while throughput and latency stay the
# measured load's. Hostile requests are judged on their own (the robustness suite).
COUNTED_KINDS = (*PRODUCTION_KINDS, "golden")


@dataclass(frozen=True)
class LoadSpec:
    users: int
    spawn_rate: float
    duration_s: float
    warmup_s: float = 0.0
    rate: float = 0.0  # offered req/s in total (paced users); 0 = closed loop, as fast as the service answers
    rows_per_request: int = 1
    batch_rows: int = 32
    batch_weight: int = 0
    endpoint: str | None = None
    payload_file: Path | None = None
    # "synthetic": marked so replicas never log it as production traffic; "production": logged like a client's
    # (with a payload file, request ids name each body's index: labels known per body join the log later)
    traffic: str = "synthetic"
    golden_file: Path | None = None  # rows + expected labels, checked by one extra user
    shape: str | None = None  # a LoadTestShape in loadtests/shapes.py (MODELOPS_SHAPE); -u/-r/-t then unused
    hostile_users: int = 0  # users sending hostile bodies beside the others (their requests are kind "hostile")
    max_body_bytes: int | None = None  # the service's body limit, which hostile users probe from both sides
    processes: int = 1  # Locust processes generating the load (> 1: Locust's --processes, a master and workers)
    cgroup_procs: Path | None = None  # run the generator inside this cgroup (a CPU budget of its own; tests)
    zipf_s: float = 0.0  # > 0: rows drawn with Zipf popularity from a pool of distinct_rows (a cache's load)
    distinct_rows: int = 10_000
    zipf_seed: int = 6  # the sequence of draws: the same seed, the same rows in the same order
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CpuSample:
    t: float  # epoch seconds at the end of the sampled interval
    generator_cpu: float  # cores the whole Locust process tree used
    generator_load: float  # the busiest Locust process: (CPU used + time waiting for a CPU) / wall time, in cores
    machine_idle: float  # cores the machine left idle
    generator_wait: float = 0.0  # the most any Locust process waited for a CPU / wall time
    budget: tuple[int, int] | None = None  # the measured pool's cgroup counters so far: (periods, throttled ones)


@dataclass(frozen=True)
class Window:
    t: float  # epoch seconds at the window's start
    kind: str  # user kind: single, batch, golden, hostile …
    ok: int
    failed: int
    latencies: dict[int, int]  # rounded ms -> count


@dataclass(frozen=True)
class Sends:
    """Paced sends that fell due in one window (open-loop load: loadtests/locustfile.py)."""

    t: float  # epoch seconds at the window's start
    sends: int
    late: int  # left more than the locustfile's LATE_S after they were due
    behind: int  # of those, late because the user's previous answer had not come back yet
    most_late_ms: float


@dataclass(frozen=True)
class Figures:
    """What a span of a run measured: good answers only count as throughput."""

    requests: int
    failures: int
    seconds: float
    good_rps: float  # successful responses per second
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    generator_load: float | None  # mean over the span of the busiest Locust process's load (cores)
    generator_cpu: float | None  # mean cores used by the whole generator
    machine_idle: float | None  # mean idle cores of the machine
    generator_wait: float | None = None  # mean share of time the most delayed Locust process waited for a CPU
    # Paced (open-loop) load: sends due in the span, those that left late, and the latest one (ms). A late send's
    # latency counts from when it was due, so lateness is in the percentiles too; these say how much of it there was.
    sends: int = 0
    late_sends: int = 0
    behind_sends: int = 0
    most_late_ms: float | None = None

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    @property
    def late_ratio(self) -> float:
        return self.late_sends / self.sends if self.sends else 0.0


@dataclass(frozen=True)
class LoadResult:
    url: str
    prefix: str
    out_dir: str
    exit_code: int
    processes: int
    started: float  # epoch seconds when the load began (Locust's test start)
    measured_from: float  # epoch seconds after warm-up: what counts starts here
    windows: list[Window]
    window_s: float
    steps_started: list[tuple[float, int]]  # (epoch seconds, users) when each step of a shape began
    cpu: list[CpuSample]
    golden_checks: int
    cpu_warning: bool  # Locust's own warning (kept for the record; the samples above are what the gate judges)
    failure_messages: dict[str, int]
    measured: Figures  # the whole measured part (after warm-up), production requests
    # Golden rows' answers: {row index: {served label: times}} (every answer, right or wrong; empty without them)
    golden_answers: dict[int, dict[str, int]] = field(default_factory=dict)
    sends: list[Sends] = field(default_factory=list)  # paced load only: sends by window of when they were due

    # The figures most callers want, for the measured part.
    @property
    def requests(self) -> int:
        return self.measured.requests

    @property
    def failures(self) -> int:
        return self.measured.failures

    @property
    def rps(self) -> float:
        return self.measured.good_rps

    @property
    def p50_ms(self) -> float:
        return self.measured.p50_ms or 0.0

    @property
    def p95_ms(self) -> float:
        return self.measured.p95_ms or 0.0

    @property
    def p99_ms(self) -> float:
        return self.measured.p99_ms or 0.0

    @property
    def error_ratio(self) -> float:
        return self.measured.error_ratio

    def figures(self, start: float, end: float, kinds: tuple[str, ...] = PRODUCTION_KINDS) -> Figures:
        """The figures of the span [start, end) (epoch seconds), over whole windows inside it: of the measured load
        with every counted request's failure (the default), or of ``kinds`` alone."""
        counted = COUNTED_KINDS if kinds == PRODUCTION_KINDS else kinds
        return figures(self.windows, self.window_s, self.cpu, start, end, kinds, counted, self.sends)

    def throttled(self, start: float, end: float) -> float | None:
        """Share of CPU scheduler periods in [start, end) in which the measured pool hit its budget (None where the
        target cannot tell)."""
        inside = [s.budget for s in self.cpu if s.budget is not None and start <= s.t <= end + SAMPLE_INTERVAL_S / 2]
        if len(inside) < 2:
            return None
        periods = inside[-1][0] - inside[0][0]
        return (inside[-1][1] - inside[0][1]) / periods if periods > 0 else None

    def timeline(self, every_s: float = 1.0) -> list[tuple[float, Figures]]:
        """Per ``every_s`` seconds of the measured part: (seconds since the run started, figures of that slice)."""
        if not self.windows:
            return []
        end = max(w.t for w in self.windows) + self.window_s
        out = []
        t = self.measured_from
        while t + every_s <= end + 1e-9:
            out.append((t - self.started, self.figures(t, t + every_s)))
            t += every_s
        return out


def figures(
    windows: list[Window],
    window_s: float,
    cpu: list[CpuSample],
    start: float,
    end: float,
    kinds: tuple[str, ...] = PRODUCTION_KINDS,
    counted: tuple[str, ...] = COUNTED_KINDS,
    sends: list[Sends] | None = None,
) -> Figures:
    """Throughput and latency of the ``kinds`` of request; requests and failures of the ``counted`` ones too."""
    spanned = [w for w in windows if start - 1e-9 <= w.t and w.t + window_s <= end + 1e-9]
    inside = [w for w in spanned if w.kind in kinds]
    due = [s for s in sends or [] if start - 1e-9 <= s.t and s.t + window_s <= end + 1e-9]
    ok = sum(w.ok for w in inside)
    failed = sum(w.failed for w in spanned if w.kind in kinds or w.kind in counted)
    answered = sum(w.ok for w in spanned if w.kind in counted and w.kind not in kinds)
    spans = {w.t for w in inside}
    seconds = len(spans) * window_s if spans else 0.0
    if spans:  # a span with no request at all in some windows still lasted that long
        seconds = max(seconds, min(end, max(spans) + window_s) - max(start, min(spans)))
    latencies: dict[int, int] = {}
    for w in inside:
        for ms, count in w.latencies.items():
            latencies[ms] = latencies.get(ms, 0) + count
    samples = [s for s in cpu if start < s.t <= end + SAMPLE_INTERVAL_S / 2]
    return Figures(
        requests=ok + answered + failed,
        failures=failed,
        seconds=seconds,
        good_rps=ok / seconds if seconds else 0.0,
        p50_ms=percentile(latencies, 0.50),
        p95_ms=percentile(latencies, 0.95),
        p99_ms=percentile(latencies, 0.99),
        generator_load=_mean([s.generator_load for s in samples]),
        generator_cpu=_mean([s.generator_cpu for s in samples]),
        machine_idle=_mean([s.machine_idle for s in samples]),
        generator_wait=_mean([s.generator_wait for s in samples]),
        sends=sum(s.sends for s in due),
        late_sends=sum(s.late for s in due),
        behind_sends=sum(s.behind for s in due),
        most_late_ms=max((s.most_late_ms for s in due), default=None),
    )


def percentile(latencies: dict[int, int], q: float) -> float | None:
    """The smallest latency with at least ``q`` of the requests at or below it (None without requests)."""
    total = sum(latencies.values())
    if not total:
        return None
    needed = q * total
    seen = 0
    for ms in sorted(latencies):
        seen += latencies[ms]
        if seen >= needed - 1e-9:
            return float(ms)
    return float(max(latencies))


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------------------------------- generator processes
# A Locust process planned to run at most this share of a core: the gate calls a process at max_generator_load
# (0.85 by default) saturated, and the cost of a request measured on one load varies with the next one's latencies.
PLANNED_SHARE_OF_MAX = 0.7
USERS_PER_PROCESS = 500  # gevent users one process carries before its scheduling shows in the latencies


@dataclass(frozen=True)
class GeneratorPlan:
    processes: int  # 1: one Locust process; N > 1: a master and N workers
    reason: str  # how the number was reached, for notes and reports


def cpu_per_request(result: LoadResult) -> float | None:
    """Generator CPU (core-seconds, all Locust processes) one request cost in a finished run; None when the run
    measured no CPU or no requests."""
    f = result.measured
    if f.generator_cpu is None or not f.requests or not f.seconds:
        return None
    return f.generator_cpu / (f.requests / f.seconds)


def plan_processes(
    expected_rps: float | None,
    users: int,
    previous: LoadResult | None,
    max_processes: int,
    max_generator_load: float,
    cores: int | None = None,
) -> GeneratorPlan:
    """How many Locust processes the next load needs, chosen before it runs: its expected request rate times the
    generator CPU a request cost on the previous load, spread so that no process plans to be busier than
    PLANNED_SHARE_OF_MAX of ``max_generator_load``; at least users / USERS_PER_PROCESS; at most ``max_processes``
    and the machine's cores. Without a previous measurement or an expected rate, one process (the gate still runs a
    load again with more when its generator turned out to be the limit)."""
    cap = max(1, min(max_processes, cores or psutil.cpu_count() or 1))
    by_users = -(-users // USERS_PER_PROCESS)
    cost = cpu_per_request(previous) if previous is not None else None
    if cost is None or not expected_rps:
        wanted, why = by_users, "no measured generator CPU per request yet"
    else:
        per_process = PLANNED_SHARE_OF_MAX * max_generator_load
        needed = expected_rps * cost
        by_cpu = max(1, -(-needed // per_process))
        wanted = int(max(by_cpu, by_users))
        why = (
            f"{expected_rps:.0f} req/s x {cost * 1000:.2f} ms of generator CPU per request (measured on "
            f"{previous.prefix if previous else '?'}) = {needed:.2f} cores, at most {per_process:.2f} per process"
        )
    processes = min(cap, wanted)
    if processes < wanted:
        why += f"; capped at {cap} (gate.max_generator_processes or the machine's cores)"
    return GeneratorPlan(processes=processes, reason=f"{processes} Locust process(es): {why}")


# --------------------------------------------------------------------------------------------- running Locust
def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(url: str, spec: LoadSpec, out_dir: Path, prefix: str) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE),
            *locust_args(url, spec, str(out_dir / prefix), spec.payload_file, spec.golden_file)]  # fmt: skip
    if spec.processes > 1:
        # Locust's master listens on 5557 unless told: two multi-process loads at once (two gates, parallel tests)
        # would collide, so the master and its forked workers meet on a port free now.
        port = str(_free_port())
        argv += ["--processes", str(spec.processes), "--master-bind-port", port, "--master-port", port]
    if spec.cgroup_procs:
        # Enter the cgroup before exec: Locust and any worker it forks inherit the budget.
        argv = ["/bin/sh", "-c", f'echo $$ > "{spec.cgroup_procs}" && exec "$@"', "modelops-locust", *argv]
    return argv


def locust_args(
    url: str, spec: LoadSpec, base: str, payload_file: Path | str | None, golden_file: Path | str | None
) -> list[str]:
    """Locust's options for one load, outputs at ``base`` (a path prefix): the same for a local run and for a master
    in a cluster (modelops/gate/cluster.py), which passes the paths its pods see."""
    argv = [
        "--headless", "-H", url,
        "--only-summary", "--csv", base, "--html", f"{base}.html", "--json-file", base,
        "--logfile", f"{base}.log", "--meta-file", f"{base}.meta.json",
        "--rows-per-request", str(spec.rows_per_request), "--batch-rows", str(spec.batch_rows),
        "--batch-weight", str(spec.batch_weight), "--warmup", str(spec.warmup_s), "--rate", str(spec.rate),
        "--stop-timeout", "5",
    ]  # fmt: skip
    if spec.hostile_users:
        argv += ["--hostile-users", str(spec.hostile_users)]
    if spec.max_body_bytes:
        argv += ["--max-body-bytes", str(spec.max_body_bytes)]
    if spec.zipf_s > 0:
        argv += ["--zipf-s", str(spec.zipf_s), "--distinct-rows", str(spec.distinct_rows)]
        argv += ["--zipf-seed", str(spec.zipf_seed)]
    if not spec.shape:
        argv += ["-u", str(spec.users), "-r", str(spec.spawn_rate), "-t", f"{spec.warmup_s + spec.duration_s:g}s"]
    if spec.endpoint:
        argv += ["--endpoint", spec.endpoint]
    if payload_file:
        argv += ["--payload-file", str(payload_file)]
    if golden_file:
        argv += ["--golden-file", str(golden_file)]
    if spec.traffic != "synthetic":
        argv += ["--traffic", spec.traffic]
    return argv


Probe = Callable[[], "tuple[int, int] | None"]


def run(
    url: str,
    spec: LoadSpec,
    out_dir: Path,
    prefix: str = "locust",
    timeout: float | None = None,
    budget_probe: Probe | None = None,
) -> LoadResult:
    """Run one headless Locust load against ``url``, sampling CPU while it runs; return what it measured.
    ``budget_probe`` reads the measured pool's CPU-budget counters (Target.cpu_throttling)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = command(url, spec, out_dir, prefix)
    env = {**_clean_env(), **spec.extra_env}
    if spec.shape:
        env["MODELOPS_SHAPE"] = spec.shape
    limit = timeout or (spec.warmup_s + spec.duration_s + 60)
    stderr = out_dir / f"{prefix}.stderr"
    with open(stderr, "w") as err:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
    sampler = CpuSampler(process.pid, budget_probe=budget_probe)
    sampler.start()
    try:
        returncode = process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise DeploymentError(f"locust did not finish within {limit:g} s; see {out_dir / prefix}.log") from None
    finally:
        sampler.stop()
    meta_path = out_dir / f"{prefix}.meta.json"
    if not meta_path.exists():
        log = out_dir / f"{prefix}.log"
        text = stderr.read_text(errors="replace") + (log.read_text(errors="replace") if log.exists() else "")
        raise DeploymentError(f"locust failed (exit {returncode}):\n{text[-3000:]}")
    return parse(url, out_dir, prefix, returncode, sampler.samples, spec.processes)


def _clean_env() -> dict[str, str]:
    import os

    # Locust must not inherit a deployment marker: `down` would count it as part of the deployment.
    return {k: v for k, v in os.environ.items() if k != "MODELOPS_DEPLOYMENT"}


def parse(
    url: str, out_dir: Path, prefix: str, exit_code: int = 0, cpu: list[CpuSample] | None = None, processes: int = 1
) -> LoadResult:
    meta = json.loads((out_dir / f"{prefix}.meta.json").read_text())
    window_s = float(meta.get("window_s") or 0.5)
    windows = [
        Window(t=float(t), kind=str(kind), ok=int(ok), failed=int(failed),
               latencies={int(ms): int(n) for ms, n in latencies.items()})
        for t, kind, ok, failed, latencies in meta.get("windows", [])
    ]  # fmt: skip
    started = float(meta.get("test_start") or meta.get("started") or (windows[0].t if windows else time.time()))
    measured_from = float(meta.get("stats_reset_at") or started)
    failures: dict[str, int] = {}
    failures_csv = out_dir / f"{prefix}_failures.csv"
    if failures_csv.exists():
        import csv

        for row in csv.DictReader(failures_csv.open()):
            failures[row["Error"][:300]] = failures.get(row["Error"][:300], 0) + int(row["Occurrences"])
    sends = [Sends(float(t), int(n), int(late), int(behind), float(most))
             for t, n, late, behind, most in meta.get("sends", [])]  # fmt: skip
    samples = cpu or []
    end = max((w.t + window_s for w in windows), default=measured_from)
    return LoadResult(
        url=url,
        prefix=prefix,
        out_dir=str(out_dir),
        exit_code=exit_code,
        processes=processes,
        started=started,
        measured_from=measured_from,
        windows=windows,
        window_s=window_s,
        steps_started=[(float(at), int(users)) for at, users in meta.get("steps", [])],
        cpu=samples,
        golden_checks=int(meta.get("golden_checks", 0)),
        golden_answers=_golden_answers(meta),
        cpu_warning=bool(meta.get("cpu_warning")),
        failure_messages=failures,
        measured=figures(windows, window_s, samples, measured_from, end, sends=sends),
        sends=sends,
    )


def _golden_answers(meta: dict) -> dict[int, dict[str, int]]:
    return {
        int(row): {str(k): int(v) for k, v in served.items()}
        for row, served in (meta.get("golden_answers") or {}).items()
    }


# ------------------------------------------------------------------------------------------------ CPU sampling
class CpuSampler:
    """Samples, every SAMPLE_INTERVAL_S, the CPU used and the run-queue wait of a process tree, and the machine's
    idle CPU, in a background thread."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S, budget_probe: Probe | None = None) -> None:
        self.pid = pid
        self.budget_probe = budget_probe
        self.interval = interval
        self.samples: list[CpuSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        before = _tree_times(self.pid)
        machine = psutil.cpu_times()
        last = time.time()
        while not self._stop.wait(self.interval):
            now = time.time()
            after = _tree_times(self.pid)
            machine_now = psutil.cpu_times()
            elapsed = now - last
            if elapsed <= 0:
                continue
            used = {pid: after[pid][0] - before.get(pid, (0.0, 0.0))[0] for pid in after}
            waited = {pid: after[pid][1] - before.get(pid, (0.0, 0.0))[1] for pid in after}
            busiest = max(((used[p] + waited[p]) / elapsed for p in after), default=0.0)
            most_delayed = max((waited[p] / elapsed for p in after), default=0.0)
            idle = (machine_now.idle - machine.idle) + (
                getattr(machine_now, "iowait", 0.0) - getattr(machine, "iowait", 0.0)
            )
            self.samples.append(
                CpuSample(
                    t=now,
                    generator_cpu=sum(used.values()) / elapsed,
                    generator_load=busiest,
                    machine_idle=max(0.0, idle / elapsed),
                    budget=self._budget(),
                    generator_wait=most_delayed,
                )
            )
            before, machine, last = after, machine_now, now

    def _budget(self) -> tuple[int, int] | None:
        if self.budget_probe is None:
            return None
        try:
            return self.budget_probe()
        except Exception:  # a probe that fails (deployment changing under it) only costs this sample
            return None


def _tree_times(pid: int) -> dict[int, tuple[float, float]]:
    """{pid: (CPU seconds used, seconds waited for a CPU)} for the process and its descendants, so far."""
    out: dict[int, tuple[float, float]] = {}
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.Error:
        return out
    for process in members:
        with contextlib.suppress(psutil.Error, OSError):
            times = process.cpu_times()
            out[process.pid] = (times.user + times.system, _run_delay(process.pid))
    return out


def _run_delay(pid: int) -> float:
    """Seconds the process's threads spent runnable but not running (waiting for a CPU, or held by a CPU quota)."""
    total = 0
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9
