"""gate.endpoint, gate.payload_file and gate.locustfile: the gate loads a user's own bento as the user does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelops.gate import loadgen, userload
from modelops.gate.loadgen import LoadSpec
from stacks.config import ConfigError, GateSettings

SPEC = LoadSpec(users=2, spawn_rate=2, duration_s=2)

USER_LOCUSTFILE = """
from locust import HttpUser, constant, task


class MyClient(HttpUser):
    wait_time = constant(0.05)

    @task
    def score(self):
        self.client.post("/predict", json={"rows": [[13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05,
                                                     3.4, 1050.0]]}, headers={"x-modelops-synthetic": "test"})
"""


def test_endpoint_and_payload_file_reach_every_load(tmp_path: Path) -> None:
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text('{"rows": [[1.0]]}\n\n{"rows": [[2.0]]}\n')
    gate = GateSettings(endpoint="/classify", payload_file=str(bodies))
    spec = userload.apply(SPEC, gate, tmp_path / "run")
    assert spec.endpoint == "/classify"
    assert json.loads(Path(spec.payload_file).read_text()) == [{"rows": [[1.0]]}, {"rows": [[2.0]]}]
    assert userload.apply(SPEC, GateSettings(), tmp_path) == SPEC, "no settings: the load is unchanged"
    own = LoadSpec(users=1, spawn_rate=1, duration_s=1, endpoint="/v2/models/wine/infer")
    assert userload.apply(own, gate, tmp_path / "run").endpoint == own.endpoint, "a load's own endpoint wins"


def test_a_payload_file_line_that_is_not_json_is_refused_with_its_number(tmp_path: Path) -> None:
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text('{"rows": [[1.0]]}\n{"rows": \n')
    with pytest.raises(ConfigError, match="line 2"):
        userload.apply(SPEC, GateSettings(payload_file=str(bodies)), tmp_path / "run")


def test_a_missing_file_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"gate\.locustfile: no such file"):
        userload.apply(SPEC, GateSettings(locustfile=str(tmp_path / "nope.py")), tmp_path)


def test_endpoint_must_be_a_path() -> None:
    with pytest.raises(ValidationError, match="starting with '/'"):
        GateSettings(endpoint="predict")
    assert GateSettings(endpoint="/predict").endpoint == "/predict"


def test_the_users_own_locustfile_makes_the_load_and_the_gate_still_measures_it(
    reference_bento, make_target, tmp_path
) -> None:
    url = make_target().up(reference_bento, replicas=1, workers=1).replicas[0].url
    locustfile = tmp_path / "mine.py"
    locustfile.write_text(USER_LOCUSTFILE)
    spec = userload.apply(SPEC, GateSettings(locustfile=str(locustfile)), tmp_path)
    result = loadgen.run(url, spec, tmp_path / "load")
    assert result.requests > 0 and result.failures == 0, result.failure_messages
    stats = json.loads((tmp_path / "load" / "locust.json").read_text())
    assert {entry["name"] for entry in stats} == {"/predict"}, "only the user's requests, by the user's names"
