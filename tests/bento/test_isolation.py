"""One client can never hurt another, on real replicas through HAProxy: 16 well-behaved clients and 2 hostile ones
for 10 s; every good request succeeds, every hostile one gets a 4xx (never a 5xx).

Two kinds of hostile input: values beyond the model's input range (refused with 422 by the input contract, before the
model), and rows the contract cannot catch that make the model raise inside a merged batch (the batcher must isolate
them: proven with a fake model served through the production batcher, which counts the batches it had to split).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from modelops.targets.local import LocalTarget, procs
from tests.conftest import local_settings
from tests.fixtures.poisoned import POISON, build_poisoned

GOOD_CLIENTS, HOSTILE_CLIENTS, SECONDS = 16, 2, 10.0


def hammer(url: str, bodies: dict[str, tuple[int, str]], seconds: float) -> dict[str, Counter]:
    """Each group's clients post its body back to back (own keep-alive connection each) for ``seconds``.
    Returns, per group, a count of outcomes: HTTP status codes, or the connection error's type."""
    stop = threading.Event()
    outcomes = {group: Counter() for group in bodies}
    lock = threading.Lock()

    def client(group: str, body: str) -> None:
        with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as http:
            while not stop.is_set():
                try:
                    outcome: int | str = http.post(url + "/predict", content=body).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    outcomes[group][outcome] += 1

    threads = [
        threading.Thread(target=client, args=(group, body), daemon=True)
        for group, (count, body) in bodies.items()
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    stop.wait(seconds)  # the load's duration, not a synchronisation
    stop.set()
    for thread in threads:
        thread.join(timeout=35)
    return outcomes


def check(outcomes: dict[str, Counter], url: str) -> None:
    good, hostile = outcomes["good"], outcomes["hostile"]
    print(f"\n{url}: good clients {dict(good)}, hostile clients {dict(hostile)}")
    failed = sum(n for outcome, n in good.items() if outcome != 200)
    assert failed == 0, f"{failed} of {sum(good.values())} good requests failed through {url}: {dict(good)}"
    assert good[200] >= 100, f"too few good requests to judge ({good[200]}) through {url}"
    assert hostile and all(isinstance(o, int) and 400 <= o < 500 for o in hostile), (
        f"hostile requests must get a 4xx, never a 5xx or a dropped connection, through {url}: {dict(hostile)}"
    )


def test_values_beyond_the_models_range_never_fail_other_clients(live_deployment) -> None:
    status = live_deployment.status()
    row = json.loads(httpx.get(status.replicas[0].url + "/docs.json").text)["paths"]["/predict"]["post"]
    example = row["requestBody"]["content"]["application/json"]["schema"]["properties"]["rows"]["examples"][0]
    hostile_rows = [[1e39, *example[0][1:]], [-1e300] * len(example[0])]
    outcomes = hammer(
        status.url,
        {"good": (GOOD_CLIENTS, json.dumps({"rows": example})),
         "hostile": (HOSTILE_CLIENTS, json.dumps({"rows": hostile_rows}))},
        SECONDS,
    )  # fmt: skip
    check(outcomes, status.url)
    assert set(outcomes["hostile"]) == {422}, outcomes["hostile"]


@pytest.fixture(scope="module")
def poisoned_deployment(tmp_path_factory, bentoml_home) -> Iterator[LocalTarget]:
    tag = build_poisoned(tmp_path_factory.mktemp("poisoned"))
    target = LocalTarget(local_settings(tmp_path_factory.mktemp("poisoned-deployment")))
    try:
        target.up(tag, replicas=2, workers=1)
        yield target
    finally:
        target.down()
        assert procs.marked_processes(target.deployment) == []


def test_a_request_that_makes_the_model_raise_in_a_merged_batch_fails_alone(poisoned_deployment) -> None:
    status = poisoned_deployment.status()
    outcomes = hammer(
        status.url,
        {"good": (GOOD_CLIENTS, json.dumps({"rows": [[1.0, 2.0], [3.0, 4.0]]})),
         "hostile": (HOSTILE_CLIENTS, json.dumps({"rows": [[5.0, 6.0], [POISON, 7.0]]}))},
        SECONDS,
    )  # fmt: skip
    check(outcomes, status.url)
    stats = [httpx.post(r.url + "/batcher_stats", json={}).json() for r in status.replicas]
    print(f"batcher counters per replica: {stats}")
    assert sum(s["splits"] for s in stats) > 0, (
        f"no merged batch ever held a poisoned request, so isolation was not exercised: {stats}"
    )
