"""The prediction log on real replicas: a full disk never fails a request, and a clean stop loses no record."""

from __future__ import annotations

import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bento import prediction_log as plog
from bento.prediction_log import read_window
from modelops.waiting import wait_until
from tests.tinyfs import fill, tiny_tmpfs

ROW = [13.2, 1.8, 2.4, 17.0, 100.0, 2.6, 2.7, 0.3, 1.8, 5.0, 1.0, 3.0, 1000.0]


def log_metrics(replica_url: str) -> dict[str, float]:
    """The replica's prediction log counters and queued bytes, from its /metrics."""
    text = httpx.get(replica_url + "/metrics", timeout=10).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(plog.METRIC_PREFIX) and not sample.name.endswith("_created"):
                name = sample.name.removeprefix(plog.METRIC_PREFIX + "_").removesuffix("_total")
                found[name] = found.get(name, 0.0) + sample.value
    return found


def test_a_full_disk_keeps_the_replica_serving_counts_drops_and_recovers(make_target, reference_bento, tmp_path):
    with tiny_tmpfs(tmp_path / "fs", size_kib=128) as mount:
        target = make_target(monitor={"log_dir": str(mount / "log"), "log_queue_bytes": 65_536})
        replica = target.up(reference_bento, replicas=1, workers=1).replicas[0].url
        filler = fill(mount, leave_kib=8)  # room for a few dozen records
        with httpx.Client(timeout=30) as client:
            codes = [
                client.post(
                    replica + "/predict", json={"rows": [ROW]}, headers={"x-request-id": f"full-{i}"}
                ).status_code
                for i in range(400)
            ]
            assert codes == [200] * 400, "a full disk never fails a request"
            assert wait_until(lambda: log_metrics(replica).get(plog.ERRORS, 0) > 0, 15), log_metrics(replica)
            full = log_metrics(replica)
            assert full[plog.DROPPED] > 0, f"the byte-bounded queue overflowed and counted it: {full}"
            filler.unlink()  # space is back: the writer retries on its own
            assert wait_until(lambda: log_metrics(replica).get(plog.QUEUED_BYTES, 1) == 0, 15), log_metrics(replica)
            reply = client.post(replica + "/predict", json={"rows": [ROW]}, headers={"x-request-id": "after-space"})
            assert reply.status_code == 200
            assert wait_until(lambda: any(r.request_id == "after-space" for r in read_window(mount / "log").rows), 15)
        window = read_window(mount / "log")
        assert window.malformed_lines == 0, "no torn record left by the failed writes"
        written = log_metrics(replica)[plog.WRITTEN]
        assert written == len(window.rows), "what /metrics counts as written is what the log holds"
        assert written + full[plog.DROPPED] == 401, "every request is written or counted as dropped"
        target.down()


def test_a_clean_stop_under_load_loses_no_queued_record(make_target, reference_bento, monkeypatch):
    # Records gather for 60 s before a write (0.2 s shipped): at the SIGTERM nearly every answered request is still
    # queued, so only the shutdown path (flush, fsync, close) can have written them.
    monkeypatch.setenv(plog.ENV_WRITE_INTERVAL_S, "60")
    target = make_target()
    replica = target.up(reference_bento, replicas=1, workers=1).replicas[0].url
    answered: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=10) as http:
            i = 0
            while not stop.is_set():
                request_id = f"c{n}-{i}"
                i += 1
                try:
                    reply = http.post(replica + "/predict", json={"rows": [ROW]}, headers={"x-request-id": request_id})
                except httpx.HTTPError:
                    continue  # the server is going away: not answered, so not owed to the log
                if reply.status_code == 200:
                    answered.append(request_id)

    clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(4)]
    for thread in clients:
        thread.start()
    assert wait_until(lambda: len(answered) >= 200, 60), "the load never got going"
    assert read_window(target.prediction_log_dir).rows == [], "nothing written before the stop"
    target.down()  # SIGTERM while requests keep coming
    stop.set()
    for thread in clients:
        thread.join(15)
    logged = {r.request_id for r in read_window(target.prediction_log_dir).rows}
    lost = [r for r in answered if r not in logged]
    assert not lost, f"{len(lost)} of {len(answered)} answered requests are missing from the log: {lost[:5]}"
