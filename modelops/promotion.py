"""Blue/green promotion and rollback, with a durable history that a crash cannot make lie.

The history is a write-ahead record. A promotion first writes its intent (``pending``), then switches traffic,
then marks the entry ``done``, then retires the old pool. Whatever moment a crash (even SIGKILL) interrupts this,
the balancer routes to the old version or to the new one, and :func:`reconcile` — run by every command that reads
the history — settles a ``pending`` entry from what is actually live: ``done`` if the switch happened, else
``aborted``. Every history write is atomic (write, fsync, rename).

Deployments. A deployment begins with ``modelops up`` on an empty stack (nothing serving); every entry carries the
number of the deployment it belongs to. The history outlives deployments (it is the record of what was live when),
but :func:`rollback` never reaches into an earlier one: it goes back only to a version that was live earlier in the
*current* deployment, and only when that version takes the live version's requests (same request schema,
modelops/request_schema.py). Otherwise it refuses, naming both versions and why.

A canary (modelops/canary.py) is one ``canary`` entry: written ``pending`` before the first traffic step, each
judged step appended to it while it runs, then ``done`` (the candidate took 100 %) or ``rolled_back`` with the
breach that stopped it. A crash in between is settled like a promotion, from what is live.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from modelops.errors import DeploymentError, ModelopsError, NotDeployedError, UsageError
from modelops.faults import FAILPOINT, failpoint
from modelops.state import exclusive, read_json, write_json
from modelops.targets.base import Target, TargetStatus

Action = Literal["up", "promote", "rollback", "canary", "abort"]
EntryState = Literal["pending", "done", "aborted", "rolled_back"]
__all__ = ["FAILPOINT", "failpoint"]  # re-exported: crash tests and the canary import them from here


class RollbackRefusedError(UsageError):
    """A rollback that would hand clients a version they cannot use, or one from an earlier deployment."""


class CanaryStep(BaseModel):
    """One judged step of a canary: the candidate's share of live traffic and what its window showed."""

    weight: int
    passed: bool
    source: str  # where the figures came from: "prometheus" or "haproxy+replicas"
    reasons: list[str] = []  # the breaches (empty when it passed)
    measured: dict[str, float | int | None] = {}


class Entry(BaseModel):
    id: int
    time: float
    action: Action
    bento: str  # the version this entry makes live
    previous: str | None  # the version that was live before
    summary: str | None = None  # the gate's summary.json that justified it
    state: EntryState = "pending"
    note: str = ""
    canary: list[CanaryStep] = []  # action "canary": every judged step, in order
    # The deployment this entry belongs to: numbered from 1, a new one at each `up` on an empty stack. 0: written
    # before deployments were numbered (such entries count as one deployment of their own).
    deployment: int = 0


class History(BaseModel):
    entries: list[Entry] = []

    def last_done(self) -> Entry | None:
        return next((e for e in reversed(self.entries) if e.state == "done"), None)

    def current_deployment(self) -> int:
        return self.entries[-1].deployment if self.entries else 0

    def live_in(self, deployment: int, before: int | None = None) -> list[str]:
        """The versions made live (done entries) in ``deployment``, oldest first, up to entry id ``before``."""
        return [
            e.bento for e in self.entries
            if e.deployment == deployment and e.state == "done" and (before is None or e.id < before)
        ]  # fmt: skip


class HistoryFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> History:
        data = read_json(self.path)
        return History.model_validate(data) if data else History()

    def save(self, history: History) -> None:
        write_json(self.path, history.model_dump(mode="json"))

    def writing(self):
        """Every read-modify-write of the file holds this lock: two writers never lose each other's entry."""
        return exclusive(self.path.with_name(self.path.name + ".lock"))

    def begin(
        self, action: Action, bento: str, previous: str | None, summary: str | None = None, new_deployment: bool = False
    ) -> Entry:
        """Append a pending entry to the current deployment (``new_deployment``: as the first of a new one)."""
        with self.writing():
            history = self.load()
            current = history.current_deployment()
            entry = Entry(
                id=len(history.entries) + 1, time=time.time(), action=action, bento=bento, previous=previous,
                summary=summary, deployment=current + 1 if new_deployment else current,
            )  # fmt: skip
            history.entries.append(entry)
            self.save(history)
        return entry

    def add_step(self, entry: Entry, step: CanaryStep) -> None:
        """Record a judged canary step in the (pending) entry, as it happens: a crash keeps what was judged."""
        with self.writing():
            history = self.load()
            for stored in history.entries:
                if stored.id == entry.id:
                    stored.canary.append(step)
            self.save(history)

    def finish(self, entry: Entry, state: EntryState, note: str = "") -> None:
        with self.writing():
            history = self.load()
            for stored in history.entries:
                if stored.id == entry.id:
                    stored.state, stored.note = state, note or stored.note
            self.save(history)


def reconcile(history_file: HistoryFile, live_bento: str | None) -> History:
    """Settle entries a crash left pending, from what the balancer actually serves.

    Only a caller holding the stack's operation lock may call this (modelops/locking.py): a pending entry of a
    promotion that is still running is not a crash's leftover."""
    with history_file.writing():
        history = history_file.load()
        changed = False
        for entry in history.entries:
            if entry.state == "pending":
                done = live_bento == entry.bento
                entry.state = "done" if done else "aborted"
                entry.note = "settled after an interruption: " + ("the switch had happened" if done else "it had not")
                if entry.action == "canary" and not done:
                    # The candidate may still hold a share of live traffic: removing it (the next gate does) first
                    # shifts that share back to the live pool.
                    weights = [s.weight for s in entry.canary]
                    entry.note += f" (the canary was interrupted after {weights or 'no'} % step(s))"
                changed = True
        if changed:
            history_file.save(history)
    return history


def serving(target: Target) -> bool:
    """Whether the stack serves anything now (a live pool with replicas): `up` on a stack that does not begins a
    new deployment."""
    try:
        return bool(target.status().replicas)
    except NotDeployedError:
        return False


def live_version(history_file: HistoryFile) -> str | None:
    """The version the history records as live last (in any deployment): what `up` brings back by default."""
    last = history_file.load().last_done()
    return last.bento if last else None


def record_up(history_file: HistoryFile, bento: str, new_deployment: bool = False) -> None:
    """Record what `modelops up` made live. ``new_deployment``: the stack served nothing before (see
    :func:`serving`), so this `up` begins a deployment, and nothing before it is within a rollback's reach."""
    last = history_file.load().last_done()
    if new_deployment:
        entry = history_file.begin("up", bento, None, new_deployment=True)
        history_file.finish(entry, "done", "deployed with `modelops up` on an empty stack: a new deployment")
    elif last is None or last.bento != bento:
        entry = history_file.begin("up", bento, last.bento if last else None)
        history_file.finish(entry, "done", "deployed with `modelops up`")


def baseline_summary(history: History, live_bento: str) -> Path | None:
    """The summary recorded when the live version went live through the gate, if it did."""
    last = history.last_done()
    if last and last.bento == live_bento and last.summary and Path(last.summary).exists():
        return Path(last.summary)
    return None


def check_alarms(target: Target, action: Action, bento: str) -> None:
    """Refuse a switch the platform's alarms speak against: a candidate whose own alarms fire never takes traffic,
    and a promotion does not start while the live version's alarms fire (the switch would hide which version is at
    fault). A rollback may: the live version's alarms are usually why it is rolled back."""
    firing = target.firing_alarms("candidate")
    if firing:
        raise DeploymentError(
            f"not switching traffic to {bento}: its own alarms fire ({', '.join(firing)}); look at them "
            "(`modelops status`, the alarms' console) before trying again"
        )
    live_firing = target.firing_alarms("live") if action == "promote" else []
    if live_firing:
        raise DeploymentError(
            f"not promoting {bento} while the live version's alarms fire ({', '.join(live_firing)}): a switch now "
            "would hide which version is at fault. Wait for them to clear, or `modelops rollback`"
        )


def switch(
    target: Target,
    history_file: HistoryFile,
    action: Action,
    bento: str,
    summary: str | None,
    note: str = "",
    retire: bool = True,
) -> TargetStatus:
    """Make the candidate pool (already running ``bento``) live, with zero failed requests, and record it.
    ``retire``: drain and stop the previous pool now; a promotion passes False and hands over to the bake
    (modelops/bake.py), which keeps it warm for the rollback window."""
    check_alarms(target, action, bento)
    live = target.status()
    entry = history_file.begin(action, bento, live.bento, summary)
    failpoint(f"{action}:after-intent")
    target.shift(100)
    failpoint(f"{action}:after-switch")
    history_file.finish(entry, "done", note)
    failpoint(f"{action}:after-record")
    if retire:
        target.retire_previous()
    failpoint(f"{action}:after-retire")
    return target.status()


def _when(entry: Entry) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.time))


def rollback_target(history: History, live_bento: str) -> str:
    """The version a rollback brings back: the one live before the current version, provided it was live earlier in
    the current deployment. Raises RollbackRefusedError naming both versions and why otherwise."""
    current = history.last_done()
    if current is None or current.bento != live_bento:
        raise RollbackRefusedError(
            f"nothing to roll back to: the history holds no record that {live_bento or 'anything'} went live here "
            "(`modelops history` shows what it holds)"
        )
    if current.deployment == 0 and current.previous:
        # Written before deployments were numbered: nothing scopes it, so the previous version counts as this
        # deployment's (the request-schema check still stands between clients and another API).
        return current.previous
    began = next(e for e in history.entries if e.deployment == current.deployment)
    since = f"deployment #{current.deployment}, begun by `modelops up` of {began.bento} at {_when(began)}"
    earlier_here = history.live_in(current.deployment, before=current.id)
    if current.previous is None or not earlier_here:
        older = next((e for e in reversed(history.entries) if e.deployment < current.deployment and e.state == "done"),
                     None)  # fmt: skip
        why = (
            f"; {older.bento} was live before, but in deployment #{older.deployment}, which `modelops down` ended "
            "— a rollback never reaches into an earlier deployment"
            if older is not None
            else ""
        )
        raise RollbackRefusedError(
            f"refusing to roll back from {live_bento}: it is the first version live in the current {since}, so "
            f"there is nothing earlier in this deployment to go back to{why}. To serve another version, prove it: "
            "`modelops gate --candidate TAG`"
        )
    previous = current.previous
    if previous not in earlier_here:
        raise RollbackRefusedError(
            f"refusing to roll back from {live_bento} to {previous}: {previous} was not live in the current {since} "
            f"(live in it so far: {', '.join(dict.fromkeys(earlier_here))}). To serve it, prove it: "
            f"`modelops gate --candidate {previous}`"
        )
    return previous


def check_request_schema(live_bento: str, previous: str) -> None:
    """Refuse a rollback to a version whose API would not take the requests clients send the live one."""
    from modelops.request_schema import request_schema_differences

    try:
        differences = request_schema_differences(live_bento, previous)
    except ModelopsError as exc:
        raise RollbackRefusedError(
            f"refusing to roll back from {live_bento} to {previous}: their request schemas cannot be compared "
            f"({exc}); bring both bentos into this machine's store (`bentoml import`) and try again"
        ) from None
    if differences:
        shown = "; ".join(differences[:5]) + (f" (and {len(differences) - 5} more)" if len(differences) > 5 else "")
        raise RollbackRefusedError(
            f"refusing to roll back from {live_bento} to {previous}: {previous} does not take the requests clients "
            f"send {live_bento} now ({shown}); every client request would fail. To serve it anyway, prove it with "
            f"`modelops gate --candidate {previous}` (and move the clients first)"
        )


def rollback(target: Target, history_file: HistoryFile, note=lambda _m: None, reason: str = "") -> TargetStatus:
    """Bring the version that was live before the current one back, the same way a promotion goes live — only to a
    version live earlier in the current deployment whose request schema matches the live one's. When the previous
    version's pool is still up (the rollback window after a promotion), this is a switch; otherwise it is deployed
    first. ``reason`` goes into the history entry (the bake's automatic rollback says why)."""
    status = target.status()
    history = reconcile(history_file, status.bento)
    previous = rollback_target(history, status.bento)
    check_request_schema(status.bento, previous)
    candidate = status.candidate
    if candidate is None or candidate.bento != previous:
        if candidate is not None:
            note(f"removing the stale candidate {candidate.bento} (its share of live traffic back to 0 first)")
            target.abort()
        live_pool = status.pools[status.live]
        note(f"deploying {previous} beside the live version")
        try:
            target.deploy_candidate(previous, len(live_pool.replicas), live_pool.workers)
        except ModelopsError as exc:
            raise ModelopsError(f"cannot bring {previous} back: {exc}") from exc
    note(f"switching traffic to {previous}")
    return switch(target, history_file, "rollback", previous, None, note=reason)


def abort(target: Target, history_file: HistoryFile, note=lambda _m: None) -> str | None:
    """`modelops abort`: the candidate out of live traffic (its weight to 0 first), drained and removed, with a
    history entry; the live version untouched. Settles what a crashed gate or canary left (its pending entry, a
    share of traffic on the candidate). Returns the aborted candidate's bento, or None when there was none."""
    status = target.status()
    reconcile(history_file, status.bento)
    candidate = status.candidate
    if candidate is None:
        return None
    from modelops.bake import warm_standby

    if warm_standby(history_file.path.parent) == candidate.bento and not candidate.weight:
        raise UsageError(
            f"nothing to abort: the other pool runs {candidate.bento}, the previous version, kept warm for a rollback "
            f"while {status.bento} bakes or its rollback window lasts (`modelops rollback` switches back to it; "
            "`modelops bake` shows until when)"
        )
    share = f" (it held {candidate.weight} % of live traffic)" if candidate.weight else ""
    last = history_file.load().last_done()
    what = (
        f"removed the pool of the previous version {candidate.bento}, left up by an interrupted switch"
        if last is not None and last.previous == candidate.bento and not candidate.weight
        else f"aborted the candidate {candidate.bento}{share}"
    )
    entry = history_file.begin("abort", status.bento, status.bento)
    failpoint("abort:after-intent")
    note(f"shifting {candidate.bento}'s share of live traffic to 0, then draining and removing it")
    target.abort()
    history_file.finish(entry, "done", f"{what}; {status.bento} stays live")
    return candidate.bento
