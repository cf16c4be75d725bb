"""A promotion is final only after a bake: the new live version watched on client traffic, rolled back on a breach.

After a switch — the blue/green one, or a canary's 100 % step — :func:`hand_over` starts a watcher process (it
carries the deployment's marker, like the autoscaler's supervisor, and keeps watching when the terminal that ran the
gate closes; `modelops down` stops it). For ``promotion.bake_s`` it judges one window of client traffic after the
other (``bake_window_s``) on the version that just went live (modelops/monitor/live_window.py):

- ``p95``: over the SLO (``slo.p95_ms``);
- ``error_ratio``: failed requests / requests over ``slo.max_error_ratio``;
- ``memory``: the live replicas' RSS (every worker) growing faster than ``bake_max_rss_growth_mb_per_h`` over the
  bake so far (judged once the samples span :data:`MIN_RSS_SPAN_S`; local target only: kind/aws give no pids).

A window with fewer than ``bake_min_requests`` requests is not judged (nothing shows a breach, nothing shows health).
``bake_failure_limit`` breached windows in a row roll the promotion back (:func:`modelops.promotion.rollback`):
through the previous colour, which stays up for ``rollback_window_s`` after the switch (as Argo Rollouts'
scaleDownDelaySeconds), so the rollback is a switch, not a cold boot — in-flight requests on the bad version finish,
none fails. The rollback is a history entry like any other; `modelops bake --wait` exits 41 (BAKE_ROLLED_BACK).
When the bake passed, the watcher keeps the previous colour warm until the window ends, then retires it.

Everything it knows is in ``<stack dir>/bake.json`` (`modelops status` and `modelops bake` show it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from modelops.errors import ModelopsError, NotDeployedError, UsageError
from modelops.locking import StackBusyError, stack_lock
from modelops.monitor.live_window import ColourTraffic, TrafficWindow, colour_traffic
from modelops.monitor.resources import RssTrend, pool_rss_mb, rss_trend
from modelops.state import read_json, write_json
from modelops.targets.base import Target, TargetStatus
from modelops.targets.local import procs
from stacks.config import PROJECT_ROOT, PromotionSettings, SloSettings, StackConfig, validate_settings

BAKE_FILE = "bake.json"
# RSS moves by a few MB as allocators and caches settle: a slope over a shorter span is noise, not a trend.
MIN_RSS_SPAN_S = 60.0
WINDOWS_KEPT = 50  # judged windows kept in bake.json
LOCK_WAIT_S = 120.0  # how long a rollback or retirement waits for another command to release the stack
# How hand_over starts the watcher (arguments follow). Not `python -m`: see the autoscaler's COMMAND.
COMMAND = [sys.executable, "-c", "import sys; from modelops.bake import main; sys.exit(main())"]

BAKING, PASSED, INCONCLUSIVE = "baking", "passed", "inconclusive"
ROLLED_BACK, ROLLBACK_FAILED = "rolled_back", "rollback_failed"
SUPERSEDED, STOPPED, FAILED = "superseded", "stopped", "failed"
SETTLED = (PASSED, INCONCLUSIVE, ROLLED_BACK, ROLLBACK_FAILED, SUPERSEDED, STOPPED, FAILED)


# ------------------------------------------------------------------------------------------------ the rules
@dataclass(frozen=True)
class WindowVerdict:
    judged: bool  # some rule was evaluated on this window
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # rules not evaluated, and why


def judge_window(
    window: TrafficWindow | None, rss: RssTrend | None, slo: SloSettings, promotion: PromotionSettings
) -> WindowVerdict:
    """One bake window's verdict: every breach, in words that name the setting, and what was not evaluated."""
    breaches: list[str] = []
    notes: list[str] = []
    judged = False
    if window is None:
        notes.append("traffic not evaluated: no metrics source (no Prometheus, no HAProxy)")
    elif window.requests < promotion.bake_min_requests:
        notes.append(
            f"traffic not evaluated: {window.requests} requests in {window.seconds:.0f} s, fewer than "
            f"modelops:promotion.bake_min_requests ({promotion.bake_min_requests})"
        )
    else:
        judged = True
        if window.error_ratio > slo.max_error_ratio:
            breaches.append(
                f"{window.errors} of {window.requests} client requests failed ({window.error_ratio:.2%}), over "
                f"modelops:slo.max_error_ratio ({slo.max_error_ratio:.2%})"
            )
        if window.p95_ms is not None and window.p95_ms > slo.p95_ms:
            breaches.append(f"p95 {window.p95_ms:.0f} ms over modelops:slo.p95_ms ({slo.p95_ms:g} ms)")
    if rss is None or rss.span_s < MIN_RSS_SPAN_S:
        notes.append(f"memory not evaluated yet: RSS samples span less than {MIN_RSS_SPAN_S:g} s (or no pids)")
    else:
        judged = True
        if rss.slope_mb_per_h > promotion.bake_max_rss_growth_mb_per_h:
            breaches.append(
                f"the replicas' memory grows {rss.slope_mb_per_h:.0f} MB/h over {rss.span_s:.0f} s, faster than "
                f"modelops:promotion.bake_max_rss_growth_mb_per_h ({promotion.bake_max_rss_growth_mb_per_h:g})"
            )
    return WindowVerdict(judged=judged, breaches=breaches, notes=notes)


def next_streak(streak: int, verdict: WindowVerdict) -> int:
    """Breached windows in a row: a breach adds one, a clean judged window resets, an unjudged one leaves it."""
    if verdict.breaches:
        return streak + 1
    return 0 if verdict.judged else streak


# ------------------------------------------------------------------------------------------------ the state file
def status_file(state_dir: Path) -> Path:
    return state_dir / BAKE_FILE


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """What the last bake's watcher recorded (None: no bake ran here), with whether the watcher still runs."""
    try:
        data = read_json(status_file(state_dir))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    data["running"] = bool(data.get("pid")) and procs.is_alive(int(data["pid"]), data.get("pid_started"))
    return data


def _update(state_dir: Path, **changes: Any) -> dict[str, Any]:
    data = read_json(status_file(state_dir)) or {}
    data.update(changes, updated=time.time())
    try:
        write_json(status_file(state_dir), data)
    except OSError as exc:  # a full disk must not stop the watching: the decision matters, its record less
        _say(f"bake: cannot record its state ({exc.strerror or exc}): carrying on")
    return data


def _say(message: str) -> None:
    with suppress(OSError):
        print(message, file=sys.stderr, flush=True)


def warm_standby(state_dir: Path) -> str | None:
    """The previous version's bento while its colour is kept warm for a rollback (the watcher runs), else None."""
    data = read_status(state_dir)
    if data and data["running"] and not data.get("previous_retired"):
        return str(data.get("previous") or "") or None
    return None


def require_settled(state_dir: Path) -> None:
    """Refuse a new gate while the live version is still baking: its promotion is not final yet."""
    data = read_status(state_dir)
    if data and data["running"] and data.get("state") == BAKING:
        until = time.strftime("%H:%M:%S", time.localtime(float(data.get("started", 0)) + float(data["bake_s"])))
        raise UsageError(
            f"{data['bento']} is still baking (until about {until}; `modelops bake --wait` waits for it): a "
            "promotion is final only after its bake. Wait, or roll it back with `modelops rollback`"
        )


def stop(state_dir: Path, why: str) -> str | None:
    """Stop the watcher (its pools stay as they are); what was stopped, or None. A bake still running ends
    ``stopped`` with ``why``."""
    data = read_status(state_dir)
    if not data or not data["running"]:
        return None
    procs.stop_one(procs.Proc(int(data["pid"]), data.get("pid_started"), data.get("pid_tag", "")))
    if data.get("state") == BAKING:
        _update(state_dir, state=STOPPED, reason=why)
    return f"bake watcher of {data.get('bento')} (pid {data['pid']})"


# ------------------------------------------------------------------------------------------------ the hook
def hand_over(
    target: Target,
    state_dir: Path,
    settings: StackConfig,
    bento: str,
    previous: str | None,
    note: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any] | None:
    """What every switch calls once the new version takes all the traffic (blue/green, a canary's 100 % step): with
    a bake or a rollback window configured, start the watcher process and leave the previous colour up; otherwise
    retire the previous colour now. Returns the bake's initial record, or None when nothing watches."""
    promotion = settings.promotion
    if not promotion.watched or previous is None:
        target.retire_previous()
        return None
    stop(state_dir, "a newer promotion replaced it")
    settings_file = state_dir / "bake.settings.json"
    write_json(settings_file, settings.model_dump(mode="json"))
    argv = [*COMMAND, "--settings", str(settings_file), "--state-dir", str(state_dir)]
    local_dir = getattr(target, "dir", None)
    if isinstance(local_dir, Path):
        argv += ["--local-dir", str(local_dir)]
    outputs = getattr(target, "outputs", None)
    if isinstance(outputs, dict):  # kind/aws: the stack outputs the gate was given, for the watcher's own driver
        write_json(state_dir / "bake.outputs.json", outputs)
        argv += ["--outputs", str(state_dir / "bake.outputs.json")]
    now = time.time()
    record = {
        "state": BAKING if promotion.bake_s > 0 else PASSED, "bento": bento, "previous": previous, "started": now,
        "bake_s": promotion.bake_s, "rollback_window_s": promotion.rollback_window_s,
        "window_until": now + promotion.rollback_window_s, "windows": [], "streak": 0, "reason": "",
        "previous_retired": False, "pid": None,
    }  # fmt: skip
    write_json(status_file(state_dir), record)
    marker = getattr(target, "deployment", None) or "stack-" + hashlib.sha256(str(state_dir).encode()).hexdigest()[:12]
    proc = procs.spawn(argv, deployment=str(marker), log=state_dir / "logs" / "bake.log", cwd=PROJECT_ROOT)
    note(
        f"baking {bento} for {promotion.bake_s:g} s on client traffic (watcher pid {proc.pid}); {previous} stays "
        f"warm for {promotion.rollback_window_s:g} s"
    )
    return _update(state_dir, pid=proc.pid, pid_started=proc.started, pid_tag=proc.tag)


# ------------------------------------------------------------------------------------------------ the watcher
@contextmanager
def _stack_turn(state_dir: Path, command: str, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """The stack's lock, waiting for a command that holds it (history, status reads) up to LOCK_WAIT_S."""
    deadline = clock() + LOCK_WAIT_S
    while True:
        try:
            with stack_lock(state_dir, command):
                yield
            return
        except StackBusyError:
            if clock() > deadline:
                raise
            time.sleep(0.5)


@dataclass
class Watcher:
    """Bakes the live version recorded in bake.json. ``clock``/``sleep`` injectable for tests."""

    target: Target
    settings: StackConfig
    state_dir: Path
    source: ColourTraffic | None = None
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _stopping: bool = False
    _acting: bool = False

    def stop(self) -> None:
        self._stopping = True
        if not self._acting:
            raise SystemExit(0)

    def _status(self) -> TargetStatus | None:
        """The target's status, or None while it cannot be read (the deployment gone ends the watcher)."""
        try:
            return self.target.status()
        except NotDeployedError:
            raise
        except ModelopsError as exc:
            _say(f"bake: cannot read the deployment's status now: {exc}")
            return None

    def _live_is(self, bento: str) -> bool:
        try:
            return self.target.status().bento == bento
        except NotDeployedError:
            return False

    def run(self) -> str:
        record = read_json(status_file(self.state_dir)) or {}
        bento, previous = str(record["bento"]), str(record["previous"])
        promotion = self.settings.promotion
        began = self.clock()
        elapsed_before = max(0.0, time.time() - float(record.get("started", time.time())))
        bake_end = began + promotion.bake_s - elapsed_before
        window_end = began + promotion.rollback_window_s - elapsed_before
        if record.get("state") == BAKING:
            outcome = self._bake(bento, previous, began, bake_end)
            if outcome != PASSED and outcome != INCONCLUSIVE:
                return outcome
        while self.clock() < window_end:
            if not self._live_is(bento):
                _update(self.state_dir, state_after_window=SUPERSEDED)
                return SUPERSEDED
            self.sleep(min(1.0, max(0.0, window_end - self.clock())))
        self._retire(bento, previous)
        return PASSED

    def _bake(self, bento: str, previous: str, began: float, bake_end: float) -> str:
        promotion, slo = self.settings.promotion, self.settings.slo
        rss: list[tuple[float, float]] = []
        windows: list[dict[str, Any]] = []
        streak, judged_any = 0, False
        while self.clock() < bake_end:
            status = self._status()
            if status is None:  # HAProxy restarting, a state file mid-change: this window cannot be judged
                self.sleep(max(0.0, min(promotion.bake_window_s, bake_end - self.clock())))
                continue
            if status.bento != bento:
                _update(self.state_dir, state=SUPERSEDED, reason=f"{status.bento} went live meanwhile")
                return SUPERSEDED
            colour = status.live
            if self.source is not None:
                self.source.begin(status, colour)
            # The window is wall-clock time of client traffic: the clock is the condition, nothing to poll for.
            self.sleep(max(0.0, min(promotion.bake_window_s, bake_end - self.clock())))
            status = self._status()
            if status is None:
                continue
            if status.bento != bento:
                _update(self.state_dir, state=SUPERSEDED, reason=f"{status.bento} went live meanwhile")
                return SUPERSEDED
            window = None
            if self.source is not None:
                try:
                    window = self.source.observe(status)
                except (ModelopsError, OSError) as exc:
                    _say(f"bake: no figures for this window: {exc}")
            memory = pool_rss_mb(r.pid for r in status.pools[colour].replicas) if colour in status.pools else None
            if memory is not None:
                rss.append((self.clock() - began, memory))
            verdict = judge_window(window, rss_trend(rss), slo, promotion)
            streak = next_streak(streak, verdict)
            judged_any = judged_any or verdict.judged
            windows = [*windows, _window_record(self.clock() - began, window, memory, verdict)][-WINDOWS_KEPT:]
            _update(self.state_dir, windows=windows, streak=streak)
            if streak >= promotion.bake_failure_limit:
                reason = (
                    f"the bake of {bento} breached {streak} window(s) in a row (modelops:promotion.bake_failure_limit "
                    f"{promotion.bake_failure_limit}): " + "; ".join(verdict.breaches)
                )
                return self._roll_back(bento, previous, reason)
        if not judged_any:
            reason = "no window could be judged (too little client traffic, no metrics): nothing showed a breach"
            _update(self.state_dir, state=INCONCLUSIVE, reason=reason)
            return INCONCLUSIVE
        _update(self.state_dir, state=PASSED, reason=f"{len(windows)} windows, no {promotion.bake_failure_limit} "
                "breached in a row")  # fmt: skip
        return PASSED

    def _roll_back(self, bento: str, previous: str, reason: str) -> str:
        from modelops.gate.run import history_file
        from modelops.promotion import rollback

        _say(f"bake: {reason}: rolling back to {previous}")
        self._acting = True
        try:
            with _stack_turn(self.state_dir, f"bake watcher: rolling {bento} back"):
                if not self._live_is(bento):
                    _update(self.state_dir, state=SUPERSEDED, reason="another version went live before the rollback")
                    return SUPERSEDED
                rollback(self.target, history_file(self.settings), reason=f"automatic: {reason}")
        except ModelopsError as exc:
            _update(self.state_dir, state=ROLLBACK_FAILED, reason=f"{reason}; the rollback failed: {exc}")
            return ROLLBACK_FAILED
        finally:
            self._acting = False
        _update(self.state_dir, state=ROLLED_BACK, reason=reason, previous_retired=True)
        return ROLLED_BACK

    def _retire(self, bento: str, previous: str) -> None:
        """The window is over: the previous colour goes (drained first), if it is still the one we kept warm."""
        self._acting = True
        try:
            with _stack_turn(self.state_dir, "bake watcher: closing the rollback window"):
                status = self.target.status()
                candidate = status.candidate
                if status.bento == bento and candidate is not None and candidate.bento == previous:
                    self.target.retire_previous()
        finally:
            self._acting = False
        _update(self.state_dir, previous_retired=True)


def _window_record(at: float, window: TrafficWindow | None, rss_mb: float | None, verdict: WindowVerdict) -> dict:
    return {
        "at_s": round(at, 1),
        "requests": window.requests if window else None,
        "errors": window.errors if window else None,
        "p95_ms": round(window.p95_ms, 1) if window and window.p95_ms is not None else None,
        "source": window.source if window else None,
        "rss_mb": round(rss_mb, 1) if rss_mb is not None else None,
        "judged": verdict.judged,
        "breaches": verdict.breaches,
        "notes": verdict.notes,
    }


def main(argv: list[str] | None = None) -> int:
    from modelops.monitor import service

    parser = argparse.ArgumentParser(description="the bake watcher of a promotion (started by the switch)")
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--local-dir", type=Path)
    parser.add_argument("--outputs", type=Path)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = validate_settings(json.loads(args.settings.read_text()), source=str(args.settings))
    target: Target
    if args.local_dir:
        from modelops.targets.local import LocalTarget

        target = LocalTarget(settings, state_dir=args.local_dir)
    else:
        from modelops.targets import open_target

        target = open_target(settings, outputs_file=args.outputs)
    watcher = Watcher(target, settings, args.state_dir, colour_traffic(target, service.running_prometheus(
        args.state_dir)))  # fmt: skip

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        watcher.stop()

    signal.signal(signal.SIGTERM, on_term)
    try:
        outcome = watcher.run()
    except NotDeployedError:
        _update(args.state_dir, state=STOPPED, reason="the deployment is gone")
        return 0
    except Exception as exc:
        _update(args.state_dir, state=FAILED, reason=f"the watcher failed: {exc}")
        raise
    _say(f"bake: {outcome}")
    return 0
