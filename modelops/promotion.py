"""Blue/green promotion and rollback, with a durable history that a crash cannot make lie.

The history is a write-ahead record. A promotion first writes its intent (``pending``), then switches traffic,
then marks the entry ``done``, then retires the old pool. Whatever moment a crash (even SIGKILL) interrupts this,
the balancer routes to the old version or to the new one, and :func:`reconcile` — run by every command that reads
the history — settles a ``pending`` entry from what is actually live: ``done`` if the switch happened, else
``aborted``. Every history write is atomic (write, fsync, rename).

A canary (modelops/canary.py) is one ``canary`` entry: written ``pending`` before the first traffic step, each
judged step appended to it while it runs, then ``done`` (the candidate took 100 %) or ``rolled_back`` with the
breach that stopped it. A crash in between is settled like a promotion, from what is live.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from modelops.errors import DeploymentError, ModelopsError, UsageError
from modelops.state import exclusive, read_json, write_json
from modelops.targets.base import Target, TargetStatus

Action = Literal["up", "promote", "rollback", "canary"]
EntryState = Literal["pending", "done", "aborted", "rolled_back"]
FAILPOINT = "MODELOPS_FAILPOINT"


def failpoint(name: str) -> None:
    """Fault injection for crash tests: SIGKILL this process here when MODELOPS_FAILPOINT names this point."""
    if os.environ.get(FAILPOINT) == name:
        os.kill(os.getpid(), signal.SIGKILL)


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


class History(BaseModel):
    entries: list[Entry] = []

    def last_done(self) -> Entry | None:
        return next((e for e in reversed(self.entries) if e.state == "done"), None)


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

    def begin(self, action: Action, bento: str, previous: str | None, summary: str | None = None) -> Entry:
        with self.writing():
            history = self.load()
            entry = Entry(
                id=len(history.entries) + 1, time=time.time(), action=action, bento=bento, previous=previous,
                summary=summary,
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


def record_up(history_file: HistoryFile, bento: str) -> None:
    last = history_file.load().last_done()
    if last is None or last.bento != bento:
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


def switch(target: Target, history_file: HistoryFile, action: Action, bento: str, summary: str | None) -> TargetStatus:
    """Make the candidate pool (already running ``bento``) live, with zero failed requests, and record it."""
    check_alarms(target, action, bento)
    live = target.status()
    entry = history_file.begin(action, bento, live.bento, summary)
    failpoint(f"{action}:after-intent")
    target.shift(100)
    failpoint(f"{action}:after-switch")
    history_file.finish(entry, "done")
    failpoint(f"{action}:after-record")
    target.retire_previous()
    failpoint(f"{action}:after-retire")
    return target.status()


def rollback(target: Target, history_file: HistoryFile, note=lambda _m: None) -> TargetStatus:
    """Bring the version that was live before the current one back, the same way a promotion goes live."""
    status = target.status()
    history = reconcile(history_file, status.bento)
    current = history.last_done()
    if current is None or current.bento != status.bento or not current.previous:
        raise UsageError("nothing to roll back to: the history holds no earlier live version")
    previous = current.previous
    candidate = status.candidate
    if candidate is None or candidate.bento != previous:
        if candidate is not None:
            note(f"removing the stale candidate {candidate.bento}")
            target.remove_candidate()
        live_pool = status.pools[status.live]
        note(f"deploying {previous} beside the live version")
        try:
            target.deploy_candidate(previous, len(live_pool.replicas), live_pool.workers)
        except ModelopsError as exc:
            raise ModelopsError(f"cannot bring {previous} back: {exc}") from exc
    note(f"switching traffic to {previous}")
    return switch(target, history_file, "rollback", previous, None)
