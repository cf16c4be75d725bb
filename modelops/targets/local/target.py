"""The local target: `bentoml serve` replicas on loopback ports behind one HAProxy.

Two pools, blue and green, each a set of replica processes registered in HAProxy server slots through the
runtime API. Every process is recorded in a state file (written atomically after each change, so `status` and
`down` work from another shell and after a crash) and carries the deployment's environment marker, so `down`
finds even a process that an interrupted `up` never got to record.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from pydantic import BaseModel

from modelops.bentos import bentoml_home, describe
from modelops.errors import DeploymentError, NotDeployedError, UsageError
from modelops.faults import failpoint
from modelops.monitor import synthetic
from modelops.stackdir import stack_dir
from modelops.state import exclusive, read_json, write_atomic, write_json
from modelops.targets.base import (
    Colour,
    CpuBudgets,
    KilledReplica,
    Pool,
    PoolStatus,
    ReplicaStatus,
    TargetStatus,
    other,
)
from modelops.targets.local import autoscale, cgroups, haproxy, procs
from modelops.waiting import wait_until
from stacks.cache import cache_env
from stacks.config import PROJECT_ROOT, StackConfig
from stacks.predictions import prediction_log_dir, prediction_log_env
from stacks.threads import thread_env

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def _rate_limit(settings: StackConfig) -> haproxy.RateLimit | None:
    rate = settings.rate_limit
    return haproxy.RateLimit(requests=rate.requests, window_s=rate.window_s) if rate.enabled else None


class ReplicaRecord(BaseModel):
    slot: int
    port: int
    pid: int
    started: float | None
    tag: str = ""
    log: str
    cgroup: str | None = None

    @property
    def proc(self) -> procs.Proc:
        return procs.Proc(self.pid, self.started, self.tag)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class PoolRecord(BaseModel):
    colour: Colour
    bento: str
    service: str
    workers: int
    cpu: float | None
    replicas: list[ReplicaRecord] = []


class ProcRecord(BaseModel):
    pid: int
    started: float | None
    tag: str = ""


class LocalState(BaseModel):
    deployment: str
    stack: str
    lb_port: int
    admin_port: int
    pool_ports: dict[str, int]
    haproxy_pid: int | None = None
    haproxy_started: float | None = None
    haproxy_tag: str = ""
    live: Colour = "blue"
    green_weight: int = 0
    budgets: str = ""
    pools: dict[str, PoolRecord] = {}
    autoscalers: dict[str, ProcRecord] = {}  # by pool (live, candidate): the supervisor processes


class LocalTarget:
    name = "local"

    def __init__(
        self,
        settings: StackConfig,
        state_dir: Path | None = None,
        budgets: cgroups.Budgets | None = None,
        progress: Progress = _quiet,
        limit_threads: bool = True,
    ) -> None:
        self.settings = settings
        # False only for the benchmark that shows why it is on: replicas then start with OMP_NUM_THREADS & co.
        # removed from their environment (also when this process has them), as a replica would without modelops.
        self.limit_threads = limit_threads
        self.dir = state_dir.resolve() if state_dir else stack_dir(settings)
        self.deployment = "local-" + hashlib.sha256(str(self.dir).encode()).hexdigest()[:12]
        self._budgets = budgets
        self.progress = progress
        self.state_file = self.dir / "state.json"
        self.socket_path = haproxy.socket_path_for(self.dir)
        self.map_path = self.dir / "weights.map"
        self.api = haproxy.RuntimeAPI(self.socket_path)

    @property
    def prediction_log_dir(self) -> Path:
        return prediction_log_dir(self.settings)

    # ----------------------------------------------------------------------------------------------- state
    @property
    def budgets(self) -> cgroups.Budgets:
        if self._budgets is None:
            self._budgets = cgroups.probe(self.settings.local.cpu_budgets)
        return self._budgets

    def load(self) -> LocalState | None:
        data = read_json(self.state_file)
        return LocalState.model_validate(data) if data else None

    def _save(self, state: LocalState) -> None:
        write_json(self.state_file, state.model_dump(mode="json"))

    def _require(self) -> LocalState:
        state = self.load()
        if state is not None:
            state = self._observe(state)
        if state is None:
            raise NotDeployedError(
                f"stack {self.settings.stack!r} is not up (no state in {self.dir}): "
                f"run `modelops up --stack {self.settings.stack}`"
            )
        return state

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with exclusive(self.dir / "lock"):
            yield

    def _haproxy_alive(self, state: LocalState) -> bool:
        return state.haproxy_pid is not None and procs.is_alive(state.haproxy_pid, state.haproxy_started)

    # ---------------------------------------------------------------------------------------------- up/down
    def up(self, bento: str, replicas: int, workers: int) -> TargetStatus:
        with self._locked():
            state = self.load()
            if state is not None and not self._haproxy_alive(state) and self._serving_replicas(state):
                # HAProxy died under running replicas: bring it back from the recorded state (same ports, weights,
                # pools). Tearing the pools down and starting `bento` instead would ship whatever was asked for,
                # unproven, and drop the clients' requests in flight.
                self.progress("HAProxy is gone but the replicas still run: restarting it from the recorded state")
                state = self._restart_haproxy(state)
            if state is not None and self._haproxy_alive(state):
                live = state.pools.get(state.live)
                same = live and (live.bento, len(live.replicas), live.workers) == (
                    describe(bento).tag,
                    replicas,
                    workers,
                )
                if same:
                    self.progress("already up with this bento, replica and worker count")
                    return self.status()
                raise UsageError(
                    f"stack {self.settings.stack!r} is already up at http://127.0.0.1:{state.lb_port} "
                    f"(bento {live.bento if live else '?'}): run `modelops down --stack {self.settings.stack}` "
                    "first, or roll a new version out with `modelops gate`"
                )
            if state is not None or procs.marked_processes(self.deployment):
                self.progress("cleaning up what a previous run left behind")
                self._teardown(state)
            info = describe(bento)
            try:
                synthetic.create(self.dir)  # a new deployment, a new secret for its load generators' marker
                state = self._start_haproxy()
                self._start_pool(state, "blue", info.tag, info.service, replicas, workers)
            except BaseException:
                self.progress("start failed: stopping what was started")
                self._teardown(self.load())
                raise
            return self.status()

    def down(self) -> list[str]:
        """Stop everything of this deployment. Returns what was stopped (empty when nothing was running)."""
        with self._locked():
            return self._teardown(self.load())

    def _teardown(self, state: LocalState | None) -> list[str]:
        stopped: list[str] = []
        if state is not None:
            for pool_name in list(state.autoscalers):
                stopped.append(self._stop_autoscaler(state, pool_name))  # first: it would replace what stops next
            # Then every other supervisor of the deployment (the bake's watcher, modelops/bake.py): it would roll
            # back or retire pools that are stopping. Anything marked that is not a replica or HAProxy is one.
            pools = {r.tag for pool in state.pools.values() for r in pool.replicas} | {state.haproxy_tag}
            stopped += [f"supervisor {pid}" for pid in procs.kill_marked(self.deployment, sparing=pools)]
            for pool in state.pools.values():
                self._stop_replicas(pool.replicas)
                stopped += [f"{pool.colour} replica on port {r.port} (pid {r.pid})" for r in pool.replicas]
            if state.haproxy_pid:
                procs.stop([procs.Proc(state.haproxy_pid, state.haproxy_started, state.haproxy_tag)], grace=5)
                stopped.append(f"haproxy on port {state.lb_port} (pid {state.haproxy_pid})")
        leftovers = procs.kill_marked(self.deployment)
        stopped += [f"leftover process {pid}" for pid in leftovers]
        if state is not None:
            for pool in state.pools.values():
                for replica in pool.replicas:
                    if replica.cgroup:
                        self.budgets.remove(replica.cgroup)
        synthetic.remove(self.dir)
        for path in (self.state_file, self.socket_path, self.map_path, self.dir / autoscale.HOLD_FILE,
                     *(autoscale.state_file(self.dir, p) for p in ("live", "candidate"))):  # fmt: skip
            path.unlink(missing_ok=True)
        return stopped

    # -------------------------------------------------------------------------------------------- haproxy
    @staticmethod
    def _serving_replicas(state: LocalState) -> bool:
        return any(r.proc.alive() for pool in state.pools.values() for r in pool.replicas)

    def _restart_haproxy(self, state: LocalState) -> LocalState:
        """Start HAProxy again on the recorded ports with the recorded weights, register every replica still
        running, and replace the ones that died (a pool keeps its replica count)."""
        for port in (state.lb_port, state.admin_port, *state.pool_ports.values()):
            if procs.port_in_use(port):
                raise DeploymentError(
                    f"HAProxy of stack {self.settings.stack!r} died and its port {port} on 127.0.0.1 is taken by "
                    "another process now: free it and run `modelops up` again (or `modelops down`, then `up`)"
                )
        if not self.map_path.exists():  # the runtime API's last weight is in the map file (written after each call)
            write_atomic(self.map_path, haproxy.render_map(state.green_weight))
        self._spawn_haproxy(state)
        weight = self.api.green_weight(self.map_path)
        if weight is not None and weight != state.green_weight:
            state.green_weight = weight
            if weight in (0, 100):
                state.live = "green" if weight == 100 else "blue"
        for pool in state.pools.values():
            dead = [r for r in pool.replicas if not r.proc.alive()]
            running = [r for r in pool.replicas if r.proc.alive()]
            if dead:
                self._stop_replicas(dead)
                pool.replicas = running
            self._save(state)
            if running:
                self._register(pool.colour, running)
            if dead:
                self.progress(f"replacing {len(dead)} {pool.colour} replica(s) that died meanwhile")
                self._add_replicas(state, pool, len(dead))
        self._save(state)
        return state

    def _layout(self, state: LocalState) -> haproxy.Layout:
        return haproxy.Layout(
            lb_port=state.lb_port,
            admin_port=state.admin_port,
            pool_ports=state.pool_ports,
            socket_path=self.socket_path,
            map_path=self.map_path,
            max_body_bytes=self.settings.limits.max_body_bytes,
            request_timeout_s=self.settings.limits.request_timeout_s,
            rate_limit=_rate_limit(self.settings),
            synthetic_secret=synthetic.read(self.dir),
        )

    def _port(self, configured: int, key: str) -> int:
        if configured == 0:
            return procs.free_port()
        if procs.port_in_use(configured):
            raise DeploymentError(
                f"port {configured} on 127.0.0.1 is already in use: set modelops:local.{key} in "
                f"stacks/Pulumi.{self.settings.stack}.yaml to a free port, or to 0 to pick one automatically"
            )
        return configured

    def _start_haproxy(self) -> LocalState:
        local = self.settings.local
        lb_port = self._port(local.lb_port, "lb_port")
        admin_port = self._port(local.admin_port, "admin_port")
        state = LocalState(
            deployment=self.deployment,
            stack=self.settings.stack,
            lb_port=lb_port,
            admin_port=admin_port,
            pool_ports={colour: procs.free_port() for colour in haproxy.COLOURS},
            budgets=self.budgets.reason,
        )
        write_atomic(self.map_path, haproxy.render_map(0))
        self._spawn_haproxy(state)
        return state

    def _spawn_haproxy(self, state: LocalState) -> None:
        """Start HAProxy for ``state``'s ports (the map file holds the weight it starts with) and wait for its
        runtime API; records the process in the state first."""
        binary = haproxy.binary()
        config = self.dir / "haproxy.cfg"
        write_atomic(config, haproxy.render_config(self._layout(state)))
        self.socket_path.unlink(missing_ok=True)
        log = self.dir / "logs" / "haproxy.log"
        self.progress(f"starting haproxy on 127.0.0.1:{state.lb_port}")
        proc = procs.spawn([binary, "-db", "-f", str(config)], deployment=self.deployment, log=log)
        state.haproxy_pid, state.haproxy_started, state.haproxy_tag = proc.pid, proc.started, proc.tag
        self._save(state)

        def opened() -> bool:
            procs.reap()  # collect exited children first, so that proc.alive() sees an exit
            return self.api.ready() or not proc.alive()

        if not wait_until(opened, timeout=15):
            raise DeploymentError(f"haproxy did not open its runtime API within 15 s:\n{procs.log_tail(log)}")
        if not proc.alive():
            raise DeploymentError(f"haproxy exited at start:\n{procs.log_tail(log)}")

    # -------------------------------------------------------------------------------------------- replicas
    def _bentoml_config(self, pool: PoolRecord) -> Path:
        path = self.dir / f"bentoml-{pool.colour}.yaml"
        timeout = self.settings.limits.request_timeout_s
        # Settings per service name. No `version:` key: BentoML validates the file first against its v1 schema
        # (at import) and again as v2 (for new-style services); only an unversioned file passes both.
        # Access logs off: HAProxy sees every request already, and logging costs throughput.
        write_atomic(
            path,
            "services:\n"
            f"  {pool.service}:\n"
            f"    workers: {pool.workers}\n"
            f"    traffic:\n      timeout: {timeout}\n"
            "    logging:\n      access:\n        enabled: false\n",
        )
        return path

    def _replica_home(self, name: str) -> Path:
        """BentoML keeps a server's Prometheus files in $BENTOML_HOME/prometheus_multiproc_dir and empties that folder
        whenever a server starts: replicas sharing a home serve each other's /metrics, and each start wipes the
        others'. Every replica gets a home of its own that links the store's bentos and models."""
        store, home = bentoml_home(), self.dir / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        for folder in ("bentos", "models"):
            link = home / folder
            if not link.is_symlink():
                link.symlink_to(store / folder, target_is_directory=True)
        return home

    def thread_variables(self, pool: PoolRecord) -> tuple[dict[str, str], tuple[str, ...]]:
        """(variables to set, variables to remove) in a replica's environment for its native thread pools."""
        # OpenMP and BLAS size their pools to the budget per worker, not to the machine's cores (stacks/threads.py).
        threads = thread_env((pool.cpu or self.settings.deploy.cpu_per_replica * pool.workers) / pool.workers)
        return (threads, ()) if self.limit_threads else ({}, tuple(threads))

    def _spawn_replica(self, state: LocalState, pool: PoolRecord, slot: int) -> ReplicaRecord:
        port = procs.free_port()
        name = f"{self.deployment}-{pool.colour}-{slot}"
        # Start unthrottled (imports and model loading are not what the budget is for), budget once ready.
        procs_file = self.budgets.create(name, None) if pool.cpu else None
        log = self.dir / "logs" / f"{pool.colour}-{slot}.log"
        log.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            pool.bento,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        env = {
            "BENTOML_HOME": str(self._replica_home(name)),
            "BENTOML_CONFIG": str(self._bentoml_config(pool)),
            "MODELOPS_MAX_BODY_BYTES": str(self.settings.limits.max_body_bytes),
            # The same timeout BentoML enforces (BENTOML_CONFIG): the batcher's readiness fails past it.
            "MODELOPS_REQUEST_TIMEOUT_S": str(self.settings.limits.request_timeout_s),
            "BENTOML_DO_NOT_TRACK": "true",
            # Every replica of the stack logs into one directory, each worker to its own file (named after the slot).
            **prediction_log_env(
                self.settings.monitor, str(self.prediction_log_dir), f"{pool.colour}-{slot}", synthetic.read(self.dir)
            ),
            **cache_env(self.settings.cache),  # the opt-in prediction cache (modelops:cache)
        }
        threads, unset = self.thread_variables(pool)
        argv = cgroups.join_command(procs_file, argv)
        proc = procs.spawn(argv, deployment=self.deployment, log=log, env={**env, **threads}, unset=unset)
        record = ReplicaRecord(
            slot=slot,
            port=port,
            pid=proc.pid,
            started=proc.started,
            tag=proc.tag,
            log=str(log),
            cgroup=name if procs_file else None,
        )
        pool.replicas.append(record)
        self._save(state)  # recorded before we wait on it: `down` can stop it whatever happens next
        return record

    def _wait_ready(self, replicas: list[ReplicaRecord]) -> None:
        timeout = self.settings.local.ready_timeout_s
        pending = {r.slot: r for r in replicas}
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for slot, replica in list(pending.items()):
                    if not replica.proc.alive():
                        code = procs.exit_code(replica.pid)
                        raise DeploymentError(
                            f"replica on port {replica.port} exited at start (exit code {code}); "
                            f"last lines of {replica.log}:\n{procs.log_tail(Path(replica.log))}"
                        )
                    try:
                        if client.get(f"{replica.url}/readyz").status_code == 200:
                            del pending[slot]
                    except httpx.HTTPError:
                        pass
                if not pending:
                    break
                if time.monotonic() > deadline:
                    replica = next(iter(pending.values()))
                    raise DeploymentError(
                        f"replica on port {replica.port} was not ready within {timeout:g} s "
                        f"(modelops:local.ready_timeout_s); last lines of {replica.log}:\n"
                        f"{procs.log_tail(Path(replica.log))}"
                    )
                procs.reap()
                time.sleep(0.2)

    def _register(self, colour: Colour, replicas: list[ReplicaRecord]) -> None:
        for replica in replicas:
            self.api.set_server(colour, replica.slot, replica.port)

        def all_up() -> bool:
            servers = self.api.servers(colour)
            return all(servers[haproxy.slot_name(colour, r.slot)]["status"] == "UP" for r in replicas)

        if not wait_until(all_up, timeout=15, interval=0.1):
            raise DeploymentError(f"HAProxy did not see the {colour} replicas as healthy within 15 s")

    def _add_replicas(self, state: LocalState, pool: PoolRecord, count: int) -> list[ReplicaRecord]:
        used = {r.slot for r in pool.replicas}
        free = [s for s in range(1, haproxy.SLOTS + 1) if s not in used]
        if count > len(free):
            raise UsageError(f"a pool holds at most {haproxy.SLOTS} replicas")
        self.progress(f"starting {count} {pool.colour} replica(s) of {pool.bento} ({pool.workers} worker(s) each)")
        added = [self._spawn_replica(state, pool, slot) for slot in free[:count]]
        self._wait_ready(added)
        for replica in added:
            if replica.cgroup:
                self.budgets.limit(replica.cgroup, pool.cpu)
        self._register(pool.colour, added)
        return added

    def _retire_replicas(self, state: LocalState, pool: PoolRecord, victims: list[ReplicaRecord]) -> None:
        """Drain (no new requests, in-flight ones finish), then stop and free the slots."""
        for replica in victims:
            self.api.server_state(pool.colour, replica.slot, "drain")
        self._wait_idle(pool.colour, victims)
        for replica in victims:
            self.api.server_state(pool.colour, replica.slot, "maint")
        self._stop_replicas(victims)
        pool.replicas = [r for r in pool.replicas if r not in victims]
        self._save(state)

    def _wait_idle(self, colour: str, replicas: list[ReplicaRecord], timeout: float | None = None) -> None:
        names = {haproxy.slot_name(colour, r.slot) for r in replicas}

        def idle() -> bool:
            servers = self.api.servers(colour)
            return all(int(servers[n]["scur"] or 0) == 0 for n in names)

        wait_until(idle, timeout=timeout or self.settings.limits.request_timeout_s + 1, interval=0.05)

    def _stop_replicas(self, replicas: list[ReplicaRecord]) -> None:
        procs.stop([r.proc for r in replicas])
        for replica in replicas:
            if replica.cgroup:
                self.budgets.remove(replica.cgroup)

    def _start_pool(
        self, state: LocalState, colour: Colour, bento: str, service: str, replicas: int, workers: int
    ) -> PoolRecord:
        cpu = self.settings.deploy.cpu_per_replica * workers if self.budgets.enabled else None
        pool = PoolRecord(colour=colour, bento=bento, service=service, workers=workers, cpu=cpu)
        state.pools[colour] = pool
        self._save(state)
        self._add_replicas(state, pool, replicas)
        return pool

    # ----------------------------------------------------------------------------------------- operations
    def _observe(self, state: LocalState) -> LocalState:
        """Align the recorded weight and live colour with what HAProxy actually does: after a crash between the
        runtime-API call and the state write, HAProxy is the truth about where traffic goes."""
        if not self._haproxy_alive(state):
            return state
        try:
            actual = self.api.green_weight(self.map_path)
        except DeploymentError:
            return state
        if actual is not None and actual != state.green_weight:
            state.green_weight = actual
            # The live colour flips only at the ends: after a crash between the runtime-API call and the state write
            # half way through a canary, the version that was live stays the live one (and `modelops abort` takes
            # the candidate's share back); only a completed switch (100 %, or back to 0) changes it.
            if actual in (0, 100):
                state.live = "green" if actual == 100 else "blue"
        return state

    def status(self) -> TargetStatus:
        state = self._observe(self._require())
        servers: dict[str, dict[str, dict[str, str]]] = {}
        if self._haproxy_alive(state):
            try:
                servers = {colour: self.api.servers(colour) for colour in haproxy.COLOURS}
            except DeploymentError:
                servers = {}
        pools = {}
        for colour, pool in state.pools.items():
            weight = state.green_weight if colour == "green" else 100 - state.green_weight
            replicas = []
            for r in pool.replicas:
                row = servers.get(colour, {}).get(haproxy.slot_name(colour, r.slot), {})
                # "UP", or "UP 1/2" while checks start failing: either way HAProxy still sends it requests.
                in_rotation = row.get("status", "").startswith("UP") if row else None
                replicas.append(
                    ReplicaStatus(
                        name=f"{colour}-{r.slot}",
                        url=r.url,
                        healthy=r.proc.alive() and bool(in_rotation),
                        pid=r.pid,
                        in_rotation=in_rotation,
                    )
                )
            pools[colour] = PoolStatus(
                colour=pool.colour,
                bento=pool.bento,
                url=f"http://127.0.0.1:{state.pool_ports[colour]}",
                replicas=replicas,
                workers=pool.workers,
                weight=weight,
            )
        live = state.pools.get(state.live)
        return TargetStatus(
            target=self.name,
            url=f"http://127.0.0.1:{state.lb_port}",
            bento=live.bento if live else "",
            live=state.live,
            pools=pools,
            admin_url=f"http://127.0.0.1:{state.admin_port}/stats",
            autoscale=self.autoscale_status(),
        )

    def _pool(self, state: LocalState, pool: Pool) -> PoolRecord:
        colour = state.live if pool == "live" else other(state.live)
        if colour not in state.pools:
            raise UsageError(f"there is no {pool} pool: deploy one first (`modelops gate` deploys a candidate)")
        return state.pools[colour]

    def _pool_status(self, colour: str) -> PoolStatus:
        return self.status().pools[colour]

    def scale(self, replicas: int, pool: Pool = "candidate") -> PoolStatus:
        with self._locked():
            state = self._require()
            record = self._pool(state, pool)
            dead = [r for r in record.replicas if not r.proc.alive()]
            if dead:  # replace lost replicas rather than count them
                self.progress(f"removing {len(dead)} dead {record.colour} replica(s)")
                for replica in dead:
                    self.api.server_state(record.colour, replica.slot, "maint")
                self._stop_replicas(dead)
                record.replicas = [r for r in record.replicas if r not in dead]
                self._save(state)
            current = len(record.replicas)
            if replicas > current:
                self._add_replicas(state, record, replicas - current)
            elif replicas < current:
                self.progress(f"removing {current - replicas} {record.colour} replica(s)")
                self._retire_replicas(state, record, record.replicas[replicas:])
            return self._pool_status(record.colour)

    def resize(self, workers: int, cpu: float | None = None, pool: Pool = "candidate") -> PoolStatus:
        """Give every replica of the pool ``workers`` workers and ``cpu`` cores (default: the per-worker budget
        times workers). A CPU-only change is applied in place (the cgroup quota changes under the running
        processes); a worker change replaces the replicas, rolling: the new ones are healthy and registered before
        the old ones drain, so the pool never stops serving."""
        with self._locked():
            state = self._require()
            record = self._pool(state, pool)
            wanted_cpu = (cpu if cpu is not None else self.settings.deploy.cpu_per_replica * workers) or None
            if not self.budgets.enabled:
                wanted_cpu = None
            if workers == record.workers:
                if wanted_cpu != record.cpu:
                    for replica in record.replicas:
                        if replica.cgroup:
                            self.budgets.limit(replica.cgroup, wanted_cpu)
                    record.cpu = wanted_cpu
                    self._save(state)
                return self._pool_status(record.colour)
            old = list(record.replicas)
            record.workers, record.cpu = workers, wanted_cpu
            self._add_replicas(state, record, len(old))
            self._retire_replicas(state, record, old)
            return self._pool_status(record.colour)

    def deploy_candidate(self, bento: str, replicas: int, workers: int) -> PoolStatus:
        with self._locked():
            state = self._require()
            colour = other(state.live)
            if colour in state.pools:
                raise UsageError(
                    f"a candidate ({state.pools[colour].bento}) is already deployed as {colour}: "
                    "remove it first (`modelops gate` does, or `modelops down`)"
                )
            info = describe(bento)
            try:
                self._start_pool(state, colour, info.tag, info.service, replicas, workers)
            except BaseException:
                self._drop_pool(state, colour)
                raise
            return self._pool_status(colour)

    def remove_candidate(self) -> None:
        with self._locked():
            state = self._require()
            self._drop_pool(state, other(state.live))

    def abort(self) -> None:
        """The candidate's share of live traffic back to the live pool, then the candidate drained and stopped."""
        with self._locked():
            state = self._require()
            self._drop_pool(state, other(state.live))  # gives a share it holds back first, then drains

    def _drop_pool(self, state: LocalState, colour: str) -> None:
        pool = state.pools.get(colour)
        if pool is None:
            return
        carries = state.green_weight if colour == "green" else 100 - state.green_weight
        if colour != state.live and carries and self._haproxy_alive(state):
            # An interrupted canary left this pool a share of live traffic: give it back before draining, or the
            # live frontend keeps picking a backend whose servers all drain (503s).
            self._set_green_weight(state, 0 if colour == "green" else 100)
        if pool.replicas and self._haproxy_alive(state):
            self._retire_replicas(state, pool, list(pool.replicas))
        else:
            self._stop_replicas(pool.replicas)
        del state.pools[colour]
        self._save(state)

    def shift(self, weight: int) -> TargetStatus:
        """Send ``weight`` % of live traffic to the candidate pool; at 100 the candidate becomes live."""
        if not 0 <= weight <= 100:
            raise UsageError(f"weight must be between 0 and 100, got {weight}")
        with self._locked():
            state = self._require()
            candidate = self._pool(state, "candidate")
            green = weight if candidate.colour == "green" else 100 - weight
            self._set_green_weight(state, green)
            if weight == 100:
                state.live = candidate.colour
                self._save(state)
            return self.status()

    def _set_green_weight(self, state: LocalState, green: int) -> None:
        self.api.set_green_weight(self.map_path, green)
        failpoint(f"local:green-weight-{green}")  # crash tests: HAProxy changed, nothing recorded yet
        write_atomic(self.map_path, haproxy.render_map(green))  # the file too, so a restart keeps the weight
        state.green_weight = green
        self._save(state)

    def retire_previous(self) -> None:
        """After a switch: drain and stop the pool that no longer takes traffic."""
        self.remove_candidate()

    def cpu_seconds(self, pool: Pool = "candidate") -> float | None:
        """CPU time (user + system) used so far by the pool's replica processes and their workers."""
        state = self._require()
        record = self._pool(state, pool)
        return sum(procs.cpu_seconds(r.proc) for r in record.replicas if r.proc.alive())

    def replica_processes(self, pool: Pool = "candidate") -> dict[str, tuple[int, list[psutil.Process]]]:
        """{replica name: (its leading pid, every process of it now: server, supervisor and workers)} for the
        pool's live replicas (modelops/monitor/resources.py samples their memory and open files)."""
        state = self.load()
        if state is None:
            return {}
        colour = state.live if pool == "live" else other(state.live)
        record = state.pools.get(colour)
        if record is None:
            return {}
        out = {}
        for r in record.replicas:
            # The live tree, not procs.members: its search by environment marker reads every process on the machine,
            # too costly once a second, and needed only to find workers whose parent is gone (the replica is dead).
            try:
                leader = psutil.Process(r.pid)
                if r.proc.alive():
                    out[f"{colour}-{r.slot}"] = (r.pid, [leader, *leader.children(recursive=True)])
            except psutil.Error:
                continue
        return out

    def kill_replica(self, pool: Pool = "candidate") -> KilledReplica:
        with self._locked():
            state = self._require()
            record = self._pool(state, pool)
            alive = [r for r in record.replicas if r.proc.alive()]
            if not alive:
                raise UsageError(f"the {pool} pool has no live replica to kill")
            victim = alive[-1]
            killed_at = time.time()
            procs.kill_now(victim.proc)
            return KilledReplica(name=f"{record.colour}-{victim.slot}", url=victim.url, killed_at=killed_at)

    def cpu_throttling(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """(periods, throttled periods) summed over the pool's replica cgroups so far; None without budgets."""
        if not self.budgets.enabled:
            return None
        state = self.load()
        if state is None:
            return None
        record = self._pool(state, pool)
        counts = [self.budgets.throttling(r.cgroup) for r in record.replicas if r.cgroup]
        return (sum(c[0] for c in counts), sum(c[1] for c in counts)) if counts else None

    def firing_alarms(self, pool: Pool) -> list[str]:
        """HAProxy and the replicas raise no platform alarms here; with `up --monitoring` the canary reads
        Prometheus alerts instead."""
        return []

    def cpu_budgets(self) -> CpuBudgets:
        return CpuBudgets(enforced=self.budgets.enabled, note=self.budgets.reason)

    def balancer_retries(self, pool: Pool = "candidate") -> tuple[int, int] | None:
        """HAProxy's ``wretr`` and ``wredis`` of the pool's backend (``show stat``), cumulative since it started."""
        state = self.load()
        if state is None or not self._haproxy_alive(state):
            return None
        colour = state.live if pool == "live" else other(state.live)
        for row in self.api.stats():
            if row.get("pxname") == f"be_{colour}" and row.get("svname") == "BACKEND":
                return int(row.get("wretr") or 0), int(row.get("wredis") or 0)
        return None

    def hold_scaling(self) -> None:
        """Pause every autoscaler of this deployment (they keep measuring, and change nothing) until released, this
        process ends, or modelops:autoscale.hold_max_s passes — whichever comes first (a killed gate pins nothing)."""
        autoscale.write_hold(self.dir, self.settings.autoscale.hold_max_s)

    def release_scaling(self) -> None:
        """Let the autoscalers act again. Idempotent."""
        (self.dir / autoscale.HOLD_FILE).unlink(missing_ok=True)

    # ----------------------------------------------------------------------------------------- autoscaling
    def start_autoscaler(self, pool: Pool = "live") -> None:
        """Start the supervisor process that keeps ``pool`` on modelops:autoscale (autoscale.py); returns once it
        wrote its first state. It carries the deployment marker: `down` stops it."""
        with self._locked():
            state = self._require()
            self._pool(state, pool)
            running = state.autoscalers.get(pool)
            if running and procs.is_alive(running.pid, running.started):
                return
            settings_file = self.dir / f"autoscale-{pool}.settings.json"
            write_atomic(settings_file, self.settings.model_dump_json())
            status_file = autoscale.state_file(self.dir, pool)
            status_file.unlink(missing_ok=True)
            log = self.dir / "logs" / f"autoscale-{pool}.log"
            argv = [*autoscale.COMMAND, "--settings", str(settings_file), "--state-dir", str(self.dir), "--pool", pool]
            proc = procs.spawn(argv, deployment=self.deployment, log=log, cwd=PROJECT_ROOT)
            state.autoscalers[pool] = ProcRecord(pid=proc.pid, started=proc.started, tag=proc.tag)
            self._save(state)
        period = self.settings.autoscale.sync_period_s

        def started() -> bool:
            procs.reap()
            return status_file.exists() or not proc.alive()

        if not wait_until(started, timeout=30 + 2 * period) or not proc.alive():
            raise DeploymentError(f"the {pool} autoscaler did not start:\n{procs.log_tail(log)}")

    def stop_autoscaler(self, pool: Pool = "live") -> str | None:
        """Stop the pool's supervisor (its replicas stay as they are); what was stopped, or None."""
        with self._locked():
            state = self.load()
            if state is None or pool not in state.autoscalers:
                return None
            return self._stop_autoscaler(state, pool)

    def _stop_autoscaler(self, state: LocalState, pool: str) -> str:
        record = state.autoscalers.pop(pool)
        # Signal the supervisor alone: the replicas it started are its children, and they must keep serving.
        if procs.is_alive(record.pid, record.started):
            procs.stop_one(procs.Proc(record.pid, record.started, record.tag))
        self._save(state)
        return f"{pool} autoscaler (pid {record.pid})"

    def autoscale_status(self) -> dict[str, dict]:
        """By pool: what its supervisor last wrote, with whether it still runs."""
        state = self.load()
        found = {}
        for pool in ("live", "candidate"):
            data = autoscale.read_status(self.dir, pool)
            if data is None or (pool == "candidate" and (state is None or other(state.live) not in state.pools)):
                continue  # a removed candidate's autoscaler is history: the gate's summary keeps its decisions
            record = state.autoscalers.get(pool) if state else None
            data["running"] = bool(record and procs.is_alive(record.pid, record.started))
            found[pool] = data
        return found
