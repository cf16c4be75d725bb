"""Load for any BentoML service: single-row and batch prediction users, built from the service's own OpenAPI.

Run it alone:
    locust -f loadtests/locustfile.py -H http://127.0.0.1:8080
    locust -f loadtests/locustfile.py -H URL --headless -u 32 -r 32 -t 30s --rows-per-request 1 --warmup 3

Options (also as env vars LOCUST_<NAME>): --endpoint (default: the service's only/`/predict` JSON endpoint),
--rows-per-request (single-row user), --batch-rows and --batch-weight (the batch user; weight 0 disables it),
--warmup SECONDS (statistics are reset once warm-up is over, so it never counts), --payload-file (a JSON list
of request bodies to use instead of generated ones), --meta-file (where to write what the run saw: the endpoint,
the warm-up, when each step of a load shape began, and every request's outcome and latency in half-second windows,
so that a step's figures come from its own window, not from Locust's cumulative percentiles).
Also --hostile-weight N (hostile users per 10 single users, 0: none) and --max-body-bytes (the size limit
the hostile users probe).

Repeated rows (a prediction cache's load): --zipf-s S --distinct-rows N draws every row of the single and batch
users' requests from a fixed, seeded pool of N distinct rows (built from the OpenAPI examples or bounds) with
Zipf popularity: row k is asked for in proportion to 1 / k**S (S = 1.1 over 10,000 rows: the top 10 rows are
41 % of the requests, the top 100 65 %). Off (S = 0) by default: every request then cycles through distinct payloads.

Paced load (--rate) is open-loop, as wrk2 does it: every user sends on a fixed schedule of its own, the whole set
offering --rate req/s, and a request's latency is measured from when it was *due*, not from when it left. A user
whose previous answer came back late sends the requests that fell due meanwhile at once, one after another, and each
counts the time it waited: a stall of the service shows in the latencies of every request that should have been sent
during it (no coordinated omission), and no send is skipped. Sends that left more than LATE_S after they were due are
counted ("late sends", in the meta file), and so are those that were late because the previous answer had not come
back ("behind").

Hostile users send what a careless or malicious client would (loadtests/payloads.py: hostile_bodies): extreme finite
numbers, the most rows allowed, bodies just under and over the size limit, deeply nested JSON, wrong content types,
multipart and pickle bodies. Their requests are named "<path> <kind> [hostile]" and count as failures only when
they get a 5xx or a dropped connection: a 4xx is the right answer to them.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import cast

import gevent
import locust.stats
from locust import FastHttpUser, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from payloads import (
    Endpoint,
    Zipf,
    batch_size,
    body_with_rows,
    fetch_openapi,
    find_endpoint,
    hostile_bodies,
    make_payloads,
    row_pool,
)

# MODELOPS_SHAPE names a LoadTestShape in shapes.py; Locust uses a shape class it finds in the locustfile.
if os.environ.get("MODELOPS_SHAPE"):
    import shapes

    Shape = getattr(shapes, os.environ["MODELOPS_SHAPE"])
    shapes.STEP_LISTENERS.append(lambda at, users: STATE.setdefault("steps", []).append([at, users]))
    # Steps are a few seconds long: take the "current" percentiles over 2 s, not Locust's default 10 s window.
    locust.stats.CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW = 2

STATE: dict = {}


def _user_classes(path: str | None) -> list[type]:
    """The User classes of the user's own locustfile (MODELOPS_USER_LOCUSTFILE, from gate.locustfile): they make the
    load instead of ours, and every request they send is still recorded below for the gate's figures."""
    if not path:
        return []
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location("user_locustfile", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"gate.locustfile {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [
        c for c in vars(module).values()
        if inspect.isclass(c) and issubclass(c, User) and c.__module__ == module.__name__ and not c.abstract
    ]  # fmt: skip
    if not found:
        raise SystemExit(f"gate.locustfile {path} defines no User class: define one (class MyUser(HttpUser): ...)")
    return found


USER_CLASSES = _user_classes(os.environ.get("MODELOPS_USER_LOCUSTFILE"))
# The header replicas read to leave a request out of the prediction log (bento/prediction_log.py: SYNTHETIC_HEADER).
# It counts only with the deployment's secret (modelops/monitor/synthetic.py), which the gate hands over in the
# environment; without one the header is not sent (replicas would log the requests anyway).
_SECRET = os.environ.get("MODELOPS_SYNTHETIC_SECRET", "")
SYNTHETIC = {"x-modelops-synthetic": _SECRET} if _SECRET else {}

# Every request's outcome, by half-second window and user kind: {(window, kind): [ok, failed, {rounded ms: count}]}.
# Workers of a distributed run ship theirs to the master with each stats report; the master writes them all.
WINDOW_S = 0.5
WINDOWS: dict[tuple[int, str], list] = {}
# Paced sends by half-second window (when they were due): {window: [sends, late, behind, most late ms]}.
SENDS: dict[int, list] = {}
# A paced send that leaves more than this after it was due is late. gevent wakes a sleeping user within a
# millisecond or two on an idle generator; 10 ms is well above that and well below any latency SLO we judge.
LATE_S = 0.010


def _rounded_ms(ms: float) -> int:
    """Latency buckets: 1 ms below 1 s, 10 ms above (enough for any SLO we judge; the counts stay small)."""
    return int(ms) if ms < 1000 else int(ms) // 10 * 10


@events.request.add_listener
def _record(name: str, response_time: float, exception: BaseException | None, **_kwargs) -> None:
    # A user's own locustfile names its requests as it likes: all of them are the production load ("single").
    kind = name.rsplit("[", 1)[-1].rstrip("]") if name.endswith("]") else ("single" if USER_CLASSES else "other")
    key = (int(time.time() / WINDOW_S), kind)
    window = WINDOWS.get(key)
    if window is None:
        window = WINDOWS[key] = [0, 0, {}]
    window[1 if exception else 0] += 1
    ms = _rounded_ms(response_time)
    window[2][ms] = window[2].get(ms, 0) + 1


def _count_send(due: float, late_s: float, behind: bool) -> None:
    """Record one paced send: due (epoch seconds), how late it left, and whether it waited for a previous answer."""
    sends = SENDS.get(int(due / WINDOW_S))
    if sends is None:
        sends = SENDS[int(due / WINDOW_S)] = [0, 0, 0, 0.0]
    sends[0] += 1
    if late_s > LATE_S:
        sends[1] += 1
        sends[2] += 1 if behind else 0
    sends[3] = max(sends[3], late_s * 1000)


@events.report_to_master.add_listener
def _ship_windows(data: dict, **_kwargs) -> None:
    data["modelops_windows"] = [[w, kind, *counts] for (w, kind), counts in WINDOWS.items()]
    data["modelops_sends"] = [[w, *counts] for w, counts in SENDS.items()]
    data["modelops_golden_checks"] = STATE.pop("golden_checks_unsent", 0)
    data["modelops_golden_answers"] = STATE.pop("golden_answers_unsent", {})
    WINDOWS.clear()
    SENDS.clear()


@events.worker_report.add_listener
def _merge_windows(data: dict, **_kwargs) -> None:
    _merge(data)


def _merge(data: dict) -> None:
    for w, kind, ok, failed, latencies in data.get("modelops_windows", []):
        window = WINDOWS.setdefault((w, kind), [0, 0, {}])
        window[0] += ok
        window[1] += failed
        for ms, count in latencies.items():
            window[2][int(ms)] = window[2].get(int(ms), 0) + count
    for w, sent, late, behind, most in data.get("modelops_sends", []):
        sends = SENDS.setdefault(w, [0, 0, 0, 0.0])
        sends[0] += sent
        sends[1] += late
        sends[2] += behind
        sends[3] = max(sends[3], most)
    STATE["golden_checks"] = STATE.get("golden_checks", 0) + data.get("modelops_golden_checks", 0)
    _tally_answers("golden_answers", data.get("modelops_golden_answers", {}))


def _tally_answers(key: str, answers: dict) -> None:
    """Add {row: {served label: count}} into STATE[key] (row keys arrive as strings from a worker's message)."""
    tally = STATE.setdefault(key, {})
    for row, served in answers.items():
        counts = tally.setdefault(str(row), {})
        for label, count in served.items():
            counts[label] = counts.get(label, 0) + count


# Workers report every 3 s, and when a run ends the master waits only 0.5 s for their last report before it exits;
# a worker whose users still wait for slow answers reports too late, and the last seconds of its windows are lost.
# So when the test stops, the master asks every worker to stop its users (requests in flight finish and count, as
# they do in a single process) and send what it has not reported yet, and waits until every worker has answered.
FLUSH, FLUSHED = "modelops_flush", "modelops_flushed"
FLUSH_MARGIN_S = 5.0  # beyond --stop-timeout, which bounds how long a worker's users take to stop


def _register_flush(environment) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def flush(environment, msg, **_kwargs) -> None:
            environment.runner.stop()  # returns once the users stopped (a no-op when the master stopped them)
            data: dict = {}
            _ship_windows(data)
            environment.runner.send_message(FLUSHED, data)

        runner.register_message(FLUSH, flush)
    elif isinstance(runner, MasterRunner):

        def flushed(environment, msg, **_kwargs) -> None:
            _merge(msg.data or {})
            STATE.setdefault("flushed", set()).add(msg.node_id)

        runner.register_message(FLUSHED, flushed)


@events.test_stop.add_listener
def _collect_windows(environment, **_kwargs) -> None:
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    workers = {client.id for client in runner.clients.all}
    STATE["flushed"] = set()
    runner.send_message(FLUSH)
    deadline = time.time() + (environment.stop_timeout or 0.0) + FLUSH_MARGIN_S
    while not workers <= STATE["flushed"] and time.time() < deadline:
        gevent.sleep(0.05)
    missing = workers - STATE["flushed"]
    if missing:
        STATE["unflushed_workers"] = sorted(missing)


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--endpoint", default=None, help="API path to load (default: discovered from /docs.json)")
    parser.add_argument("--rows-per-request", type=int, default=1, help="rows per single-user request")
    parser.add_argument("--batch-rows", type=int, default=32, help="rows per batch-user request")
    parser.add_argument("--batch-weight", type=int, default=0, help="batch users per 10 single users (0: none)")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds of load excluded from statistics")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered load in req/s shared by all users (0: as fast as answered)"
    )
    parser.add_argument("--payload-file", default=None, help="JSON list of request bodies to send")
    parser.add_argument(
        "--traffic",
        choices=("synthetic", "production"),
        default="synthetic",
        help="synthetic (default): requests carry X-Modelops-Synthetic, so replicas never log them as production "
        "traffic; production: they are logged like a client's, and with --payload-file each request's "
        "X-Request-Id is p<index of its body>-<random> (labels known per body can be joined to the log later)",
    )
    parser.add_argument("--meta-file", default=None, help="write run metadata (JSON) here")
    parser.add_argument("--hostile-weight", type=int, default=0, help="hostile users per 10 single users (0: none)")
    parser.add_argument(
        "--hostile-users", type=int, default=0, help="a fixed number of hostile users beside the others (0: none)"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=1_048_576,
        help="request size limit of the service (hostile users send bodies just under and just over it)",
    )
    parser.add_argument(
        "--zipf-s", type=float, default=0.0, help="draw rows from a pool with Zipf popularity of this exponent (0: off)"
    )
    parser.add_argument("--distinct-rows", type=int, default=10_000, help="rows in the Zipf pool (with --zipf-s)")
    parser.add_argument("--zipf-seed", type=int, default=6, help="seed of the sequence of Zipf draws (with --zipf-s)")
    parser.add_argument(
        "--golden-file",
        default=None,
        help='JSON {"rows": [...], "labels": [...]}: one extra user sends these rows and records every answer',
    )


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    _register_flush(environment)
    if not isinstance(environment.runner, WorkerRunner):
        _prepare(environment)


@events.test_start.add_listener
def _on_worker_start(environment, **_kwargs) -> None:
    # A worker started on its own (a Kubernetes pod: `locust --worker --master-host ...`) knows neither the host nor
    # the run's options until the master's first spawn message, which fires test_start on it; one forked by
    # --processes knows both from the start, and preparing again here gives it the same state.
    if isinstance(environment.runner, WorkerRunner) and not STATE.get("prepared"):
        _prepare(environment)


def _prepare(environment) -> None:
    options = environment.parsed_options
    if options is None or not environment.host:
        return
    STATE["prepared"] = True
    fixed_bodies = bool(options.payload_file and options.endpoint)
    needs_schema = not fixed_bodies or options.hostile_weight > 0 or options.hostile_users > 0 or options.golden_file
    if needs_schema:
        openapi = fetch_openapi(environment.host)
        endpoint = find_endpoint(openapi, options.endpoint)
    else:
        # Bodies and path given: the service needs no OpenAPI document (MLServer's V2 protocol, for `bench --peer`).
        endpoint = Endpoint(path=options.endpoint, request_schema={}, response_is_list=False)
    STATE["endpoint"] = endpoint
    STATE["production"] = options.traffic == "production"
    STATE["synthetic_headers"] = {} if STATE["production"] else dict(SYNTHETIC)
    if options.payload_file:
        bodies = json.loads(Path(options.payload_file).read_text())
        STATE["single"] = STATE["batch"] = [(body, None) for body in bodies]
    elif options.zipf_s > 0:
        _prepare_zipf(openapi, endpoint, options, distributed=isinstance(environment.runner, WorkerRunner))
    else:
        for name, rows, seed in (("single", options.rows_per_request, 1), ("batch", options.batch_rows, 2)):
            n = batch_size(openapi, endpoint, rows)
            STATE[name] = [(body, n) for body in make_payloads(openapi, endpoint, rows, seed=seed)]
    # Locust drops zero-weight classes when it builds the environment, before options are known: choose the
    # user classes here instead.
    if options.rate > 0:
        # Paced: each user sends at rate/users req/s, so all of them together offer --rate req/s. Each starts at a
        # random phase of its period and keeps it (see _paced): users started together would otherwise fire in
        # synchronised bursts and measure queueing that real, independent clients do not cause.
        # The master computes each user's rate from the total users and sends it to its workers with the run's
        # options (a worker started alone does not know the total).
        per_user = getattr(options, "paced_rate_per_user", None)
        if not per_user:
            fixed = options.hostile_users + (1 if options.golden_file else 0)  # users outside the paced load
            per_user = options.paced_rate_per_user = options.rate / max(1, options.num_users - fixed)
        STATE["phase"] = STATE["period"] = 1.0 / per_user
        SingleRowUser.wait_time = BatchUser.wait_time = _paced
    classes: list[type] = list(USER_CLASSES) or [SingleRowUser]
    if options.batch_weight > 0 and not USER_CLASSES:
        BatchUser.weight = options.batch_weight
        classes.append(BatchUser)
    if options.hostile_weight > 0 or options.hostile_users > 0:
        STATE["hostile"] = hostile_bodies(openapi, endpoint, options.max_body_bytes)
        HostileUser.weight = options.hostile_weight
        HostileUser.fixed_count = options.hostile_users
        classes.append(HostileUser)
    if options.golden_file:
        golden = json.loads(Path(options.golden_file).read_text())
        STATE["golden"] = (body_with_rows(openapi, endpoint, golden["rows"]), golden["labels"])
        GoldenUser.fixed_count = 1
        classes.append(GoldenUser)
    environment.user_classes = classes
    STATE["started"] = time.time()


def _prepare_zipf(openapi: dict, endpoint, options, distributed: bool) -> None:
    """Bodies whose rows come from a fixed pool with Zipf popularity. The pool is seeded (every process and run
    has the same rows); so is the sequence of draws of a single process (--zipf-seed), while each worker of a
    distributed run draws its own (the same sequence in every worker would repeat each row and inflate a cache's
    hit ratio; so would the same seed in runs against one warm cache)."""
    pool = row_pool(openapi, endpoint, options.distinct_rows, seed=5)
    zipf = Zipf(len(pool), options.zipf_s, seed=None if distributed else options.zipf_seed)
    STATE["zipf"] = {"s": options.zipf_s, "distinct_rows": len(pool), "seed": options.zipf_seed}
    for name, rows in (("single", options.rows_per_request), ("batch", options.batch_rows)):
        n = batch_size(openapi, endpoint, rows)
        if n == 1:  # the common case, built once: a request costs the generator one draw
            bodies = [body_with_rows(openapi, endpoint, [row]) for row in pool]
            STATE[name + "_draw"] = lambda bodies=bodies, n=n: (bodies[zipf()], n)
        else:
            STATE[name + "_draw"] = lambda n=n: (body_with_rows(openapi, endpoint, [pool[zipf()] for _ in range(n)]), n)


def _paced(user: User) -> float:
    """The wait until this user's next send is due (0 when it is already due: it then sends at once).

    Not Locust's constant_throughput, which paces from the moment the user object was created: a start-phase sleep in
    on_start only delayed the first request, and from the second one on every user spawned in the same batch fired at
    the same instant again. Measured on /noop (about 4 ms of work, one worker), 16 users at 50 req/s: the replica
    received bursts of 15-16 requests every 320 ms, so Locust reported p50 26-49 ms, p95 43-100 ms; with each user's
    schedule starting once on_start has slept its phase, the same load gives p50 3-4 ms, p95 6-12 ms.

    The schedule never restarts: a user that fell behind (its previous answer came back after the next send was due)
    sends what fell due at once, one after another, each request timed from when it was due (_post). Restarting the
    schedule there, as this function did before, skipped the sends a stall delayed and under-counted it.
    """
    paced = cast(_PredictionUser, user)  # Locust types wait_time for any User; only these users are paced
    wait = paced._due - time.perf_counter()
    paced._behind = wait < 0
    return max(0.0, wait)


@events.test_start.add_listener
def _schedule_reset(environment, **_kwargs) -> None:
    STATE["test_start"] = time.time()
    warmup = getattr(environment.parsed_options, "warmup", 0.0) or 0.0
    if warmup > 0 and environment.runner is not None:

        def reset() -> None:
            environment.runner.stats.reset_all()
            STATE["reset_at"] = time.time()

        gevent.spawn_later(warmup, reset)


@events.quitting.add_listener
def _write_meta(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None or not options.meta_file or isinstance(environment.runner, WorkerRunner):
        return
    endpoint = STATE.get("endpoint")
    meta = {
        "endpoint": endpoint.path if endpoint else None,
        "warmup_s": options.warmup,
        "started": STATE.get("started"),
        "test_start": STATE.get("test_start"),
        "stats_reset_at": STATE.get("reset_at"),
        "cpu_warning": bool(getattr(environment.runner, "cpu_warning_emitted", False)),
        "golden_checks": STATE.get("golden_checks", 0),
        "golden_answers": STATE.get("golden_answers", {}),
        "steps": STATE.get("steps", []),
        "zipf": STATE.get("zipf"),
        "window_s": WINDOW_S,
        "late_s": LATE_S,
        "sends": [[w * WINDOW_S, *counts] for w, counts in sorted(SENDS.items())],
        "unflushed_workers": STATE.get("unflushed_workers", []),
        "windows": [[w * WINDOW_S, kind, *counts] for (w, kind), counts in sorted(WINDOWS.items())],
    }
    Path(options.meta_file).write_text(json.dumps(meta, indent=2))


class _PredictionUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)  # closed loop: each user sends its next request as soon as the last one answered
    kind = "single"

    def on_start(self) -> None:
        # Users start at different bodies of a payload file: together they send its bodies, not N copies of its start.
        # (With --zipf-s there are no bodies to cycle through: each request draws its rows.)
        payload_file = "single" in STATE and STATE["single"][0][1] is None
        self._i = random.randrange(len(STATE[self.kind])) if payload_file else 0
        if STATE.get("phase"):
            gevent.sleep(random.uniform(0, STATE["phase"]))
        self._due = time.perf_counter()  # _paced's schedule starts here, at this user's phase
        self._behind = False

    def _post(self) -> None:
        draw = STATE.get(self.kind + "_draw")
        if draw is not None:  # --zipf-s: rows drawn by popularity (never a payload file's body)
            body, rows = draw()
        else:
            bodies = STATE[self.kind]
            index = self._i % len(bodies)
            body, rows = bodies[index]
            self._i += 1
        endpoint = STATE["endpoint"]
        name = f"{endpoint.path} [{self.kind}]"
        headers = STATE["synthetic_headers"]
        if STATE["production"] and rows is None:  # a payload file's body: its index goes into the request id
            headers = {"x-request-id": f"p{index}-{random.getrandbits(48):012x}"}
        late_s = 0.0
        period = STATE.get("period")
        if period:  # paced: this send was due at self._due; the next one is due a period later, whatever happens
            late_s = max(0.0, time.perf_counter() - self._due)
            _count_send(time.time() - late_s, late_s, self._behind)
            self._due += period
        with self.client.post(endpoint.path, json=body, name=name, headers=headers, catch_response=True) as response:
            # The latency a client sees is from when it meant to send: a send delayed by a slow previous answer
            # carries that delay (Locust's own statistics and reports get the same figure).
            response.request_meta["response_time"] += late_s * 1000
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                result = response.json()
            except ValueError:
                response.failure("response is not JSON")
                return
            if endpoint.response_is_list and rows is not None and len(result) != rows:
                response.failure(f"expected {rows} predictions, got {len(result)}")


class SingleRowUser(_PredictionUser):
    """Interactive traffic: one (or --rows-per-request) rows per request."""

    kind = "single"
    weight = 10

    @task
    def predict(self) -> None:
        self._post()


class BatchUser(_PredictionUser):
    """Batch scoring traffic: --batch-rows rows per request (enabled with --batch-weight)."""

    kind = "batch"
    weight = 0

    @task
    def predict(self) -> None:
        self._post()


class GoldenUser(FastHttpUser):
    """Sends the golden rows (enabled by --golden-file) and records every answer to each of them: the gate scores the
    answers against the rows' true labels (a wrong answer is counted, not a failed request; an error or a malformed
    answer is a failed request)."""

    wait_time = constant(0.2)
    weight = 0
    fixed_count = 0

    @task
    def check(self) -> None:
        body, labels = STATE["golden"]
        path = STATE["endpoint"].path
        name, headers = f"{path} [golden]", STATE["synthetic_headers"]
        with self.client.post(path, json=body, name=name, headers=headers, catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            try:
                served = [_answer(item) for item in response.json()]
            except (ValueError, TypeError, AttributeError):
                response.failure("golden answer is not a JSON list of predictions")
                return
            if len(served) != len(labels):
                response.failure(f"{len(served)} predictions for {len(labels)} golden rows")
                return
            answers = {str(i): {str(label): 1} for i, label in enumerate(served)}
            _tally_answers("golden_answers", answers)
            _tally_answers("golden_answers_unsent", answers)
            STATE["golden_checks"] = STATE.get("golden_checks", 0) + 1
            STATE["golden_checks_unsent"] = STATE.get("golden_checks_unsent", 0) + 1


def _answer(item):
    """A prediction's answer: a classifier's label, a regressor's value (bento/service.py), or the item itself."""
    if isinstance(item, dict):
        return item.get("label", item.get("value"))
    return item


def _same_answer(got, want) -> bool:
    """Labels equal; values equal up to float rounding (a compiled model summing its trees on several threads may
    differ from the golden value in the last digits)."""
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    return got == want


HOSTILE_SUFFIX = "[hostile]"


class HostileUser(FastHttpUser):
    """Sends hostile bodies in turn (enabled by --hostile-weight). Fails a request only on a 5xx or a dropped
    connection (status 0): refusing a hostile body with a 4xx — or serving a valid one with a 2xx — is correct."""

    wait_time = constant(0)
    weight = 0

    def on_start(self) -> None:
        self._i = random.randrange(len(STATE["hostile"]))

    @task
    def send(self) -> None:
        hostile = STATE["hostile"][self._i % len(STATE["hostile"])]
        self._i += 1
        path = STATE["endpoint"].path
        name = f"{path} {hostile.kind} {HOSTILE_SUFFIX}"
        headers = {"content-type": hostile.content_type, **STATE["synthetic_headers"]}
        with self.client.post(path, data=hostile.content, headers=headers, name=name, catch_response=True) as response:
            if response.status_code == 0 or response.status_code >= 500:
                error = response.error or (response.text or "")[:200]
                response.failure(f"hostile {hostile.kind!r}: HTTP {response.status_code}: {error}")
            else:
                response.success()
