"""StackConfig: the shipped stack files validate; every invalid value names its key, the allowed values, the file."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError, available_stacks, load_stack_config


def write_stack(tmp_path, body: str, name: str = "t"):
    (tmp_path / f"Pulumi.{name}.yaml").write_text("config:\n  modelops:target: local\n" + body)
    return tmp_path


@pytest.mark.parametrize("stack", available_stacks())
def test_every_shipped_stack_file_is_valid(stack: str) -> None:
    assert load_stack_config(stack).stack == stack


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("  modelops:deploy:\n    replicas: 0\n", ["modelops:deploy.replicas", ">= 1, <= 32", "Pulumi.t.yaml"]),
        ("  modelops:deploy:\n    replica: 3\n", ["modelops:deploy.replica", "unknown key", "replicas, workers"]),
        ("  modelops:slo:\n    p95_ms: 500\n    p99_ms: 100\n", ["modelops:slo", "p99_ms (100.0) must be >= p95_ms"]),
        ("  modelops:gate:\n    horizontal_replicas: [2, 1]\n", ["horizontal_replicas", "strictly increasing"]),
        ("  modelops:slo:\n    max_error_ratio: 2\n", ["modelops:slo.max_error_ratio", "<= 1"]),
        ("  modelops:local:\n    cpu_budgets: maybe\n", ["modelops:local.cpu_budgets", "true or false"]),
        ("  modelops:cache:\n    max_entries: 0\n", ["modelops:cache.max_entries", ">= 1", "rows held"]),
        ("  modelops:cache:\n    ttl_s: 0\n", ["modelops:cache.ttl_s", "> 0"]),
    ],
    ids=[
        "below-minimum",
        "unknown-key",
        "p99-below-p95",
        "steps-not-increasing",
        "ratio-above-one",
        "not-a-bool",
        "cache-without-room",
        "cache-without-lifetime",
    ],
)
def test_invalid_values_name_the_key_the_allowed_values_and_the_file(tmp_path, body, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config("t", write_stack(tmp_path, body))
    for word in words:
        assert word in str(caught.value), f"{word!r} missing from: {caught.value}"


def test_unknown_target_lists_the_targets(tmp_path) -> None:
    (tmp_path / "Pulumi.t.yaml").write_text("config:\n  modelops:target: gcp\n")
    with pytest.raises(ConfigError, match="'local', 'kind' or 'aws'"):
        load_stack_config("t", tmp_path)


def test_a_file_without_config_mapping_says_what_shape_it_needs(tmp_path) -> None:
    (tmp_path / "Pulumi.t.yaml").write_text("modelops:target: local\n")
    with pytest.raises(ConfigError, match="top-level 'config:' mapping"):
        load_stack_config("t", tmp_path)


def test_overrides_are_validated_like_the_file() -> None:
    settings = load_stack_config("local")
    assert settings.with_overrides(deploy={"replicas": 3}).deploy.replicas == 3
    with pytest.raises(ConfigError, match=r"modelops:deploy\.workers"):
        settings.with_overrides(deploy={"workers": 0})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("  modelops:deploy:\n    min_replicas: 3\n    max_replicas: 2\n",
         ["modelops:deploy", "min_replicas (3) must be <= max_replicas (2)"]),
        ("  modelops:deploy:\n    replicas: 6\n  modelops:autoscale:\n    enabled: true\n",
         ["modelops:deploy needs min_replicas <= replicas <= max_replicas", "1 <= 6 <= 4"]),
        ("  modelops:autoscale:\n    metric: cpu\n    target: 150\n",
         ["modelops:autoscale", "not a CPU percentage", "1 to 100"]),
        ("  modelops:autoscale:\n    metric: rps\n", ["modelops:autoscale.metric", "'in_flight', 'cpu'"]),
        ("  modelops:autoscale:\n    sync_period_s: 0\n", ["modelops:autoscale.sync_period_s", ">= 0.2"]),
        ("  modelops:gate:\n    autoscale_users: [16, 2]\n", ["modelops:gate.autoscale_users", "strictly increasing"]),
    ],
    ids=["bounds-reversed", "replicas-outside-bounds", "cpu-target-not-percent", "unknown-metric", "sync-zero",
         "peak-below-base"],
)  # fmt: skip
def test_invalid_autoscaling_values_name_the_key_and_the_fix(tmp_path, body, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config("t", write_stack(tmp_path, body))
    for word in words:
        assert word in str(caught.value), f"{word!r} missing from: {caught.value}"


def test_one_scaling_definition_validates_for_in_flight_and_cpu(tmp_path) -> None:
    body = "  modelops:deploy:\n    replicas: 6\n    max_replicas: 8\n  modelops:autoscale:\n    enabled: true\n"
    settings = load_stack_config("t", write_stack(tmp_path, body + "    metric: in_flight\n    target: 150\n"))
    assert (settings.deploy.max_replicas, settings.autoscale.target) == (8, 150)
    settings = settings.with_overrides(autoscale={"metric": "cpu", "target": 70})
    assert settings.autoscale.metric == "cpu"


def test_replicas_outside_the_bounds_are_fine_while_nothing_autoscales_the_local_pool(tmp_path) -> None:
    settings = load_stack_config("t", write_stack(tmp_path, "  modelops:deploy:\n    replicas: 6\n"))
    assert settings.deploy.replicas == 6


def test_the_demo_stack_is_the_local_settings_under_its_own_name_and_state() -> None:
    from modelops.gate.run import history_file
    from modelops.stackdir import stack_dir

    demo, local = load_stack_config("demo"), load_stack_config("local")
    assert demo.stack == "demo" and demo.target == "local"
    assert demo.model_dump(exclude={"stack"}) == local.model_dump(exclude={"stack"})
    # Its own deployment (state, process marker) and history: the demo never stops or rewrites `local`'s.
    assert stack_dir(demo) != stack_dir(local)
    assert history_file(demo).path != history_file(local).path


def test_a_demo_stack_file_wins_over_the_derived_settings(tmp_path) -> None:
    stacks = write_stack(tmp_path, "  modelops:deploy:\n    replicas: 3\n", name="demo")
    assert load_stack_config("demo", stacks).deploy.replicas == 3


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("  modelops:cache:\n    enabled: true\n    max_entries: 50000\n",
         ["modelops:gate.distinct_rows (20000) must exceed modelops:cache.max_entries (50000)", "e.g. to 100000"]),
        ("  modelops:cache:\n    enabled: true\n  modelops:gate:\n    zipf_s: 0\n",
         ["modelops:gate.zipf_s is 0", "every request would be a cache hit"]),
        ("  modelops:gate:\n    rounds: 1\n", ["modelops:gate.rounds", "greater than or equal to 2"]),
    ],
    ids=["pool-not-larger-than-the-cache", "fixed-bodies-with-the-cache", "one-round"],
)  # fmt: skip
def test_the_gate_load_must_outnumber_the_cache_and_measure_in_rounds(tmp_path, body, words) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config("t", write_stack(tmp_path, body))
    for word in words:
        assert word in str(caught.value), f"{word!r} missing from: {caught.value}"


def test_the_cache_as_deployed_with_rows_outnumbering_it_is_valid(tmp_path) -> None:
    body = "  modelops:cache:\n    enabled: true\n    max_entries: 5000\n"
    settings = load_stack_config("t", write_stack(tmp_path, body))
    assert settings.cache.enabled and settings.gate.distinct_rows > settings.cache.max_entries
