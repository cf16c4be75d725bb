"""Production traffic scenarios for the monitoring loop: what clients of the reference wine model send, normal or
shifted, with the true label of every request known — so drift can be shown (and measured) on a real deployment,
and ground truth can arrive later as feedback.

- ``normal``: rows the model never saw (the held-out split of ``bento/train.py``), drawn with replacement, with
  Gaussian noise shaped like their covariance (:func:`smoothed_bootstrap`; modelops/monitor/calibrate.py measures
  the drift checks' false alarms on exactly this traffic).
- ``shifted``: the same, with ``feature`` moved by ``shift_std`` training standard deviations in every row: an
  upstream change (a recalibrated sensor, a new supplier) the model was not trained for.

A scenario is a payload file Locust sends (``--payload-file``, ``--traffic production``: replicas log it as client
traffic, each request id naming its body, ``p<index>-…``) and the labels of those bodies. :func:`feedback_from_log`
joins the labels to the logged requests, by their prediction ids, into the stack's label store
(modelops/monitor/labels.py), which concept drift and the gate's quality suite read.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import numpy as np

from bento.prediction_log import LoggedRow, read_window
from modelops.monitor.drift import DriftError
from modelops.monitor.labels import Label, LabelStore

Kind = Literal["normal", "shifted"]
_BODY_ID = re.compile(r"^p(\d+)-")


@dataclass(frozen=True)
class Scenario:
    kind: Kind
    rows: np.ndarray  # one row per request
    labels: list[str]  # the true class of each row
    feature: str | None = None
    shift_std: float = 0.0

    def bodies(self) -> list[dict]:
        return [{"rows": [row]} for row in self.rows.tolist()]


def heldout(metadata: dict) -> tuple[np.ndarray, list[str]]:
    """The rows bento/train.py held out (same data, seed and split) and their true class names."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    data = load_wine()
    if list(metadata.get("feature_names", [])) != [str(n) for n in data.feature_names]:
        raise DriftError("traffic scenarios need a model trained on sklearn's wine data (bento/train.py)")
    test_rows = int(metadata.get("metrics", {}).get("test_rows", 0))
    _, x_test, _, y_test = train_test_split(
        data.data, data.target, test_size=test_rows or 0.25, random_state=metadata.get("seed", 1), stratify=data.target
    )
    classes = list(metadata.get("classes") or [str(c) for c in data.target_names])
    return x_test, [classes[int(i)] for i in y_test]


def smoothed_bootstrap(
    rows: np.ndarray, n: int, jitter: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows drawn with replacement from ``rows``, each moved by Gaussian noise shaped like the rows' own
    covariance (times ``jitter``²), then shrunk towards their mean by 1/sqrt(1 + jitter²): the smoothed bootstrap
    with a covariance-shaped kernel (Silverman 1986, 6.4), whose draws keep the rows' mean, variances *and*
    correlations. Returns (rows, index of the row each was drawn from).

    Why not independent noise per feature (what this module did before): it weakens every correlation between
    features, which is a real change of the joint distribution — the multivariate drift check (PCA reconstruction
    error) rightly flagged that "normal" traffic as drifted."""
    picked = rng.integers(0, len(rows), n)
    if not jitter:
        return rows[picked].astype(float), picked
    mean = rows.mean(axis=0)
    noise = rng.multivariate_normal(np.zeros(rows.shape[1]), np.cov(rows, rowvar=False), size=n, method="eigh")
    return mean + (rows[picked] - mean + jitter * noise) / np.sqrt(1 + jitter**2), picked


def training_std(metadata: dict, feature: str) -> float:
    names = list(metadata["feature_names"])
    if feature not in names:
        raise DriftError(f"unknown feature {feature!r}: choose one of {', '.join(names)}")
    from sklearn.datasets import load_wine

    return float(load_wine().data[:, names.index(feature)].std(ddof=1))


def scenario(
    metadata: dict,
    kind: Kind,
    requests: int,
    feature: str = "color_intensity",
    shift_std: float = 1.5,
    jitter: float = 0.3,
    seed: int = 0,
) -> Scenario:
    if requests < 1:
        raise ValueError(f"requests must be at least 1, got {requests}")
    x, labels = heldout(metadata)
    rng = np.random.default_rng(seed)
    rows, picked = smoothed_bootstrap(x, requests, jitter, rng)
    if kind == "shifted":
        std = training_std(metadata, feature)  # refuses an unknown feature, naming the known ones
        rows[:, list(metadata["feature_names"]).index(feature)] += shift_std * std
        return Scenario(kind, rows, [labels[i] for i in picked], feature, shift_std)
    return Scenario(kind, rows, [labels[i] for i in picked])


def write_scenario(s: Scenario, directory: Path) -> tuple[Path, Path]:
    """The payload file (for Locust) and the labels file (index -> label), in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    payloads, labels = directory / f"{s.kind}-payloads.json", directory / f"{s.kind}-labels.json"
    payloads.write_text(json.dumps(s.bodies()))
    labels.write_text(json.dumps(s.labels))
    return payloads, labels


def labels_from_log(log_rows: Iterable[LoggedRow], labels: list[str], since: float = 0.0) -> list[Label]:
    """The true label of every logged request whose client id names a body of the scenario (``p<i>-``), logged at
    or after ``since``, keyed by the server's prediction id (client ids may collide; prediction ids cannot)."""
    found = []
    for row in log_rows:
        match = _BODY_ID.match(row.request_id)
        if row.ts < since or not match or int(match[1]) >= len(labels):
            continue
        found.append(Label(row.prediction_id or row.request_id, row.row, labels[int(match[1])]))
    return found


def feedback_to_store(log_dir: Path, labels: list[str], store: LabelStore, since: float = 0.0) -> int:
    """Store the scenario's labels of the requests logged since ``since`` (joined to their predictions at once).
    Returns how many labelled rows were stored."""
    rows = read_window(log_dir).rows
    return store.add(labels_from_log(rows, labels, since), rows).stored


def feedback_from_log(log_dir: Path, labels: list[str], out: Path, since: float = 0.0) -> int:
    """Append to the JSONL file ``out`` the labels :func:`labels_from_log` finds (with the client's request id and
    the prediction id). Returns how many labelled rows were written."""
    rows = read_window(log_dir).rows
    by_key = {(r.prediction_id or r.request_id, r.row): r.request_id for r in rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    found = labels_from_log(rows, labels, since)
    with out.open("a") as handle:
        for label in found:
            record = {"prediction_id": label.prediction_id, "request_id": by_key[(label.prediction_id, label.row)]}
            handle.write(json.dumps({**record, "row": label.row, "label": label.label}) + "\n")
    return len(found)


class Clients:
    """Client threads sending a scenario's bodies to ``url`` in turn (request ids ``p<index>-…``), ``rate`` requests
    per second in all, until the context exits. Counts answers and failures; for a canary to have traffic to judge."""

    def __init__(self, url: str, s: Scenario, rate: float = 30.0, clients: int = 2) -> None:
        self.url, self.scenario, self.rate, self.clients = url, s, rate, clients
        self.ok = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _send(self, first: int) -> None:
        bodies = self.scenario.bodies()
        period = self.clients / self.rate
        with httpx.Client(timeout=30) as client:
            index = first
            while not self._stop.wait(period):
                i = index % len(bodies)
                try:
                    reply = client.post(self.url + "/predict", json=bodies[i],
                                        headers={"x-request-id": f"p{i}-{uuid.uuid4().hex[:12]}"})  # fmt: skip
                    good = reply.status_code == 200
                except httpx.HTTPError:
                    good = False
                with self._lock:
                    self.ok += good
                    self.failed += not good
                index += self.clients

    def __enter__(self) -> Clients:
        for first in range(self.clients):
            thread = threading.Thread(target=self._send, args=(first,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)


def shifted_training_csv(metadata: dict, feature: str, shift_std: float, out: Path) -> Path:
    """The whole wine data set as it looks after the shift (``feature`` moved by ``shift_std`` training stds), with
    its labels, as the CSV ``modelops retrain --data`` reads: the data a team would collect after the change."""
    from sklearn.datasets import load_wine

    data = load_wine()
    names = list(metadata["feature_names"])
    classes = list(metadata["classes"])
    x = data.data.copy()
    x[:, names.index(feature)] += shift_std * training_std(metadata, feature)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "class"])
        for row, label in zip(x.tolist(), data.target.tolist(), strict=True):
            writer.writerow([*row, classes[int(label)]])
    return out
