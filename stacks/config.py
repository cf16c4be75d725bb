"""StackConfig: the one typed, validated settings model, read by Pulumi *and* by modelops.

A stack's settings live in ``stacks/Pulumi.<stack>.yaml`` under Pulumi's ``config:`` key, namespaced by the project
name (``modelops:deploy: {replicas: 2}``). ``modelops`` reads the file directly (:func:`load_stack_config`); a
Pulumi program reads the same keys through Pulumi config (:func:`from_pulumi`). Both end in the same frozen model,
so an invalid value fails early, the same way, with a message that names the key, the allowed values and the file.

Importing this module creates no resources and needs no Pulumi engine.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PROJECT = "modelops"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# MODELOPS_STACKS_DIR points modelops at another folder of stack files (tests use it for throwaway stacks).
STACKS_DIR = Path(os.environ.get("MODELOPS_STACKS_DIR") or PROJECT_ROOT / "stacks")
TARGETS = ("local", "kind", "aws")
# The promotion gate's suites, in the order they run (modelops/gate reads them from here: one list for both). The
# suites that load the deploy shape come first, the scaling sweeps after; horizontal ends at the deploy shape's
# worker count, so a promotion rarely has to reshape the candidate.
GATE_SUITES = (
    "smoke", "quality", "slo", "failover", "robustness", "vertical", "horizontal", "autoscale", "plan", "soak",
    "regression",
)  # fmt: skip
# Required on top of gate.required_suites whenever autoscaling is on (modelops:autoscale.enabled).
AUTOSCALE_SUITE = "autoscale"
DEFAULT_REQUIRED_SUITES = ["smoke", "slo", "failover", "robustness", "vertical", "horizontal", "plan", "soak"]
Target = Literal["local", "kind", "aws"]


class ConfigError(ValueError):
    """A stack setting is missing or invalid. The message says which key, what is allowed and where to fix it."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DeploySettings(_Section):
    replicas: int = Field(2, ge=1, le=32, description="replicas in the live pool (at start, when autoscaled)")
    min_replicas: int = Field(
        1, ge=1, le=100, description="fewest replicas per pool the autoscaler keeps (local supervisor, HPA, ASG)"
    )
    max_replicas: int = Field(
        4, ge=1, le=100, description="most replicas per pool the autoscaler starts (local supervisor, HPA, ASG)"
    )
    workers: int = Field(1, ge=1, le=16, description="BentoML worker processes per replica")
    cpu_per_replica: float = Field(
        0.5,
        gt=0,
        le=64,
        description="CPU budget per replica, in cores: a cgroup quota locally, the CPU limit on Kubernetes",
    )
    memory_mb: int = Field(
        1024,
        ge=128,
        le=262_144,
        description="memory per replica (Kubernetes limit); the gate's soak suite projects each replica's memory "
        "growth to it (locally nothing enforces it)",
    )
    accelerator: Literal["none", "nvidia"] = Field(
        "none",
        description="none, or nvidia: replicas get NVIDIA GPUs (aws: a GPU instance family and the NVIDIA-ready "
        "Deep Learning Base AMI, `docker run --gpus all`; kind: nvidia.com/gpu limits, the GPU toleration)",
    )
    gpus_per_replica: int = Field(1, ge=1, le=8, description="NVIDIA GPUs per replica (accelerator: nvidia)")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> DeploySettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be <= max_replicas ({self.max_replicas})")
        return self


class AutoscaleSettings(_Section):
    """One scaling definition for the three targets, read with deploy.min_replicas/max_replicas: the local
    supervisor (modelops/targets/local/autoscale.py), the kind HPA and the aws target tracking policy.

    HPA semantics: desired = ceil(current x metric / target), unchanged within ``tolerance``, clamped to the bounds;
    a scale-up takes the lowest recommendation of the last ``scale_up_window_s``, a scale-down the highest of the
    last ``scale_down_window_s`` (scale out fast, scale in slowly)."""

    enabled: bool = Field(
        False,
        description="local: `modelops up` starts the supervisor (`--autoscale` turns it on for one deployment) and the "
        "gate requires the autoscale suite",
    )
    metric: Literal["in_flight", "cpu"] = Field(
        "cpu",
        description="in_flight: requests in flight per replica (local: HAProxy; kind: the pods' "
        "bentoml_service_request_in_progress through a custom-metrics adapter; aws: ALB requests per target, the "
        "closest CloudWatch has); cpu: CPU used, % of a replica's budget (cgroup, CPU request, instance vCPUs)",
    )
    target: float = Field(
        70.0, gt=0, le=1000, description="per replica: requests in flight (in_flight), or % of its CPU budget (cpu)"
    )
    tolerance: float = Field(
        0.1, ge=0, lt=1, description="no change while metric / target is within 1 +- tolerance (HPA: 0.1)"
    )
    scale_up_window_s: float = Field(
        0.0, ge=0, le=3600, description="stabilisation window of a scale-up, seconds (HPA default 0: at once)"
    )
    scale_down_window_s: float = Field(
        300.0, ge=0, le=3600, description="stabilisation window of a scale-down, seconds (HPA default 300)"
    )
    sync_period_s: float = Field(
        15.0, ge=0.2, le=600, description="seconds between decisions, each on the metric averaged over the period"
    )
    decisions_kept: int = Field(20, ge=1, le=1000, description="last scaling decisions kept for `modelops status`")
    hold_max_s: float = Field(
        3600.0,
        ge=1,
        le=86_400,
        description="longest a gate's hold pins the replica count (local): a hold also ends when the gate's process "
        "does, so this only bounds a gate that hangs",
    )

    @model_validator(mode="after")
    def _target_in_range(self) -> AutoscaleSettings:
        if self.metric == "cpu" and not 1 <= self.target <= 100:
            raise ValueError(
                f"target {self.target:g} is not a CPU percentage: with metric cpu it is % of a replica's budget, "
                "1 to 100 (e.g. 70)"
            )
        return self


class LimitsSettings(_Section):
    max_body_bytes: int = Field(
        1_048_576, ge=1024, le=67_108_864, description="largest request body accepted (413 above it)"
    )
    request_timeout_s: float = Field(10.0, gt=0, le=600, description="server-side time limit per request")


class RateLimitSettings(_Section):
    """Per-source request rate limit at the local load balancer (HAProxy stick table): one client cannot take every
    replica's capacity. Off by default: on loopback every client is 127.0.0.1, so it would limit all of them as one."""

    enabled: bool = Field(False, description="refuse a source above requests per window with 429 + Retry-After")
    requests: int = Field(1000, ge=1, le=1_000_000, description="requests one source may send per window")
    window_s: int = Field(10, ge=1, le=3600, description="window of the rate, seconds (also the Retry-After value)")


class CacheSettings(_Section):
    """The opt-in prediction cache of each replica (bento/cache.py): per-row results keyed by the model version and
    the row's canonical hash, so a new version never serves an old answer. Off by default: it pays only when the
    same rows come back (repeated lookups, retries, popular items); every replica holds its own."""

    enabled: bool = Field(False, description="answer rows seen before from the replica's cache")
    max_entries: int = Field(
        10_000, ge=1, le=10_000_000, description="rows held per worker at most (least recently used dropped first)"
    )
    ttl_s: float = Field(300.0, gt=0, le=604_800, description="seconds a cached row is served after it was computed")


class LocalSettings(_Section):
    lb_port: int = Field(0, ge=0, le=65535, description="HAProxy port on 127.0.0.1; 0 picks a free one")
    admin_port: int = Field(0, ge=0, le=65535, description="HAProxy stats/Prometheus port; 0 picks a free one")
    ready_timeout_s: float = Field(120.0, gt=0, le=1800, description="how long `up` waits for healthy replicas")
    cpu_budgets: bool = Field(
        True, description="hold each replica to cpu_per_replica with a cgroup v1 quota where the OS allows it"
    )
    state_dir: str = Field(".work/local", min_length=1, description="where the running deployment's state lives")


class SloSettings(_Section):
    p95_ms: float = Field(150.0, gt=0, le=60_000, description="95th percentile latency limit, ms")
    p99_ms: float = Field(300.0, gt=0, le=60_000, description="99th percentile latency limit, ms")
    max_error_ratio: float = Field(0.001, ge=0, le=1, description="failed requests / all requests")
    min_rps: float = Field(20.0, ge=0, description="requests per second the candidate must sustain")

    @model_validator(mode="after")
    def _p99_not_below_p95(self) -> SloSettings:
        if self.p99_ms < self.p95_ms:
            raise ValueError(f"p99_ms ({self.p99_ms}) must be >= p95_ms ({self.p95_ms})")
        return self


class GateSettings(_Section):
    users: int = Field(32, ge=1, le=1000, description="concurrent Locust users for the slo suite")
    spawn_rate: float = Field(32.0, gt=0, le=1000, description="users started per second")
    duration_s: float = Field(20.0, ge=2, le=3600, description="measured seconds per suite step (after warm-up)")
    warmup_s: float = Field(3.0, ge=0, le=600, description="seconds of load excluded from the figures")
    min_requests: int = Field(200, ge=1, description="fewer requests than this makes a suite inconclusive")
    rows_per_request: int = Field(1, ge=1, le=1000, description="rows in each prediction request")
    horizontal_replicas: list[int] = Field([1, 2], min_length=2, description="replica counts to compare")
    min_efficiency: float = Field(0.7, gt=0, le=2, description="lowest E(N) = RPS(N) / (N * RPS(1)) accepted")
    vertical_workers: list[int] = Field([1, 2], min_length=2, description="worker counts to compare")
    min_vertical_ratio: float = Field(1.3, gt=0, le=64, description="lowest RPS(max workers) / RPS(min workers)")
    bound_tolerance: float = Field(
        0.0,
        ge=0,
        le=0.5,
        description="how far (a fraction) a scaling ratio's whole interval may lie above its physical bound (E(N) = 1;"
        " the vertical ratio = the workers' ratio) and still be judged; beyond it the run is inconclusive. 0: not at"
        " all. A candidate whose batches grow with the requests waiting can do a little more per CPU with more CPU",
    )
    failover_max_error_ratio: float = Field(0.001, ge=0, le=1, description="error ratio allowed across a kill")
    regression_max_rps_drop: float = Field(
        0.2, ge=0, le=1, description="largest fall of req/s per replica vs the live baseline (fraction)"
    )
    regression_max_p95_rise: float = Field(
        0.3, ge=0, le=10, description="largest rise of p95 vs the live baseline (fraction)"
    )
    target_rps: float = Field(100.0, gt=0, description="the load production must carry (capacity planning)")
    step_users: list[int] = Field(
        [8, 16, 32, 64], min_length=2, description="users per step of the step load that finds each knee"
    )
    step_seconds: float = Field(5.0, ge=2, le=600, description="seconds each step of the step load holds")
    smoke_users: int = Field(4, ge=1, le=100, description="users of the light smoke load")
    smoke_seconds: float = Field(5.0, ge=1, le=600, description="seconds of smoke load")
    required_suites: list[str] = Field(
        DEFAULT_REQUIRED_SUITES,
        description="suites that must all pass for a promotion (regression is added whenever the live version "
        "was promoted by the gate); a run missing any of them ends inconclusive",
    )
    max_generator_load: float = Field(
        0.85,
        gt=0,
        le=1,
        description="a Locust process busier than this (CPU used + time waiting for a CPU, in cores) means the "
        "load generator, not the candidate, limited the measurement: inconclusive",
    )
    max_generator_wait: float = Field(
        0.3,
        gt=0,
        le=1,
        description="a Locust process that waited for a CPU more than this share of the time measured its own "
        "delays (its latencies include the wait, and it fell behind the load): inconclusive",
    )
    # 0.3, not 0.1: on a 2-core machine, a pool of 1 core of budgets beside Locust and HAProxy left 0.12-0.31 cores
    # idle while its replicas hit their budget in only 7-35 % of periods (docs/gate.md, "the machine as the limit"):
    # contention, which at 0.1 was judged as the candidate's scaling (a false exit 12 for the reference model).
    min_idle_cpu: float = Field(
        0.3,
        ge=0,
        le=64,
        description="cores the machine must leave idle while the replicas stay under their budget; less means "
        "other processes may have taken CPU the replicas were budgeted: inconclusive",
    )
    failover_max_detection_s: float = Field(
        5.0, gt=0, le=600, description="longest time from killing a replica to the balancer marking it down"
    )
    regression_min_p95_rise_ms: float = Field(
        10.0, ge=0, le=60_000, description="a p95 rise smaller than this is noise, whatever its ratio"
    )
    robustness_hostile_users: int = Field(
        2, ge=1, le=100, description="users sending hostile bodies beside the production load (robustness suite)"
    )
    robustness_fuzz_examples: int = Field(
        100, ge=1, le=100_000, description="schemathesis examples per operation in the robustness suite"
    )
    max_generator_processes: int = Field(
        2, ge=1, le=64, description="Locust processes the gate may use when one generator process is not enough"
    )
    # The quality suite (required whenever the live version has logged production traffic): the live version's last
    # modelops:monitor.window logged rows replayed to the candidate (modelops/monitor/quality.py).
    quality_min_rows: int = Field(
        100, ge=1, le=1_000_000, description="logged rows of the live version the quality suite needs to judge"
    )
    quality_min_agreement: float = Field(
        0.9,
        ge=0,
        le=1,
        description="share of replayed rows the candidate must label as the live version did, "
        "unless labelled feedback shows it at least as accurate",
    )
    quality_min_labelled: int = Field(
        50, ge=1, le=1_000_000, description="labelled replayed rows needed before accuracy decides"
    )
    # 0.03, not 0.02: the reference model's labelled set before production labels arrive is its 45 held-out rows,
    # where one row is 2.2 %; a margin under one row could never be shown kept (every such retrain inconclusive).
    quality_max_accuracy_drop: float = Field(
        0.03,
        ge=0,
        le=1,
        description="margin of the paired quality test: the candidate fails when its accuracy is lower than the live "
        "version's by more than this on the same labelled rows, with confidence (McNemar; regression: the mean "
        "absolute error may grow by this fraction)",
    )
    quality_confidence: float = Field(
        0.95,
        ge=0.5,
        lt=1,
        description="confidence of the quality rules' intervals (shared across the labelled sets judged together)",
    )
    quality_min_accuracy: float = Field(
        0.0,
        ge=0,
        le=1,
        description="floor of the candidate's accuracy on labelled rows, alone (smoke's golden rows, the quality "
        "suite's sets; also on a first deployment); 0 = no floor (a model must still beat a constant answer)",
    )
    quality_data: str | None = Field(
        None,
        min_length=1,
        description="a labelled CSV (header: the model's feature names and a label column) the quality suite judges "
        "the candidate and the live version on; relative paths from the project root",
    )
    quality_label_column: str = Field("class", min_length=1, description="the label column of gate.quality_data")
    autoscale_users: list[int] = Field(
        [2, 16],
        min_length=2,
        max_length=2,
        description="autoscale suite: [base, peak] users; the peak must exceed what one replica serves at target",
    )
    autoscale_peak_s: float = Field(30.0, ge=2, le=3600, description="autoscale suite: seconds the peak holds")
    autoscale_cool_s: float = Field(
        30.0, ge=2, le=3600, description="autoscale suite: seconds of base load after the peak (scale-in under load)"
    )
    autoscale_max_scale_out_s: float = Field(
        30.0, gt=0, le=3600, description="autoscale suite: longest time from the peak's start to a replica added"
    )
    # Verdicts that know their noise (modelops/gate/rounds.py): the scaling suites measure every configuration again
    # in this many interleaved rounds on fresh processes, and judge each ratio by its interval over the rounds.
    rounds: int = Field(
        3, ge=2, le=20, description="interleaved rounds per scaling comparison (a ratio's interval needs two at least)"
    )
    max_retried_ratio: float = Field(
        0.001,
        ge=0,
        le=1,
        description="balancer retries and redispatches per request a suite may need (a retry hides a failed answer)",
    )
    # The load's bodies: rows drawn with Zipf popularity from a pool larger than a replica's cache, as clients would
    # send them, not the same few bodies over and over (which a cache would answer from memory every time).
    zipf_s: float = Field(
        1.1, ge=0, le=5, description="popularity skew of the rows the gate sends (0: cycle 64 fixed bodies)"
    )
    distinct_rows: int = Field(
        20_000, ge=1, le=1_000_000, description="distinct rows the gate draws from (more than cache.max_entries)"
    )

    # Loading your own bento as your clients do (modelops/gate/userload.py; docs/your-own-model.md).
    endpoint: str | None = Field(
        None,
        description="the API path every suite loads, e.g. /classify (default: the service's only JSON endpoint, "
        "else /predict)",
    )
    payload_file: str | None = Field(
        None,
        description="JSON lines file, one request body per line, sent instead of bodies built from the OpenAPI "
        "schema (a relative path is the project's)",
    )
    locustfile: str | None = Field(
        None,
        description="your own locustfile: its User classes make the load (their wait_time paces it: gate.target_rps "
        "does not apply), the gate keeps its own measurements (local load generator only)",
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"must be an API path starting with '/', e.g. /predict, got {value!r}")
        return value

    # The plan and soak suites (modelops/gate/endurance.py): open-loop load at the capacity plan's own load on the
    # deploy shape; the plan suite is the soak's first plan_s seconds, on the same processes.
    plan_s: float = Field(
        30.0, ge=5, le=3600, description="plan suite: measured seconds at the planned load (after warm-up)"
    )
    soak_s: float = Field(
        180.0,
        ge=10,
        le=86_400,
        description="soak suite: seconds at the planned load on the same replica processes, the plan suite's "
        "included (memory and open files sampled every second)",
    )
    min_hours_to_memory_limit: float = Field(
        24.0,
        gt=0,
        le=100_000,
        description="soak suite: fewest hours a replica may take, at the planned load, to grow to deploy.memory_mb "
        "(and to its open-file limit)",
    )
    soak_max_p95_rise: float = Field(
        0.5,
        ge=0,
        le=100,
        description="soak suite: the last minute's p95 may exceed the first minute's by this fraction at most",
    )
    soak_min_p95_rise_ms: float = Field(
        10.0, ge=0, le=60_000, description="soak suite: a rise of p95 smaller than this is noise, whatever its ratio"
    )

    @field_validator("required_suites")
    @classmethod
    def _known_suites(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in GATE_SUITES]
        if unknown:
            raise ValueError(f"unknown suite(s) {unknown}: choose from {', '.join(GATE_SUITES)}")
        return names

    @field_validator("horizontal_replicas", "vertical_workers", "step_users", "autoscale_users")
    @classmethod
    def _increasing_positive(cls, steps: list[int]) -> list[int]:
        if any(s < 1 for s in steps) or sorted(set(steps)) != steps:
            raise ValueError(f"must be strictly increasing integers >= 1, got {steps}")
        return steps


class DriftWatchSettings(_Section):
    """The monitor process's online drift detector (modelops/monitor/online.py): CUSUM on chunk statistics, its
    thresholds set from the false alarms a day the user accepts (docs/monitoring-watch.md argues the method)."""

    interval_s: int = Field(60, ge=1, le=86_400, description="seconds between two looks at the prediction log")
    min_chunk_rows: int = Field(
        100, ge=10, le=1_000_000, description="rows a chunk needs before it is judged (fewer: it waits for more)"
    )
    max_false_alarms_per_day: float = Field(
        1.0, gt=0, le=1000, description="expected drift alarms a day on traffic that did not drift; sets thresholds"
    )
    min_shift_sd: float = Field(
        0.5, gt=0, le=10, description="smallest mean shift (training standard deviations) the detector is tuned to"
    )
    pca_variance: float = Field(
        0.65, gt=0, lt=1, description="variance the multivariate check's PCA keeps (NannyML's default: 0.65)"
    )
    stale_after_s: int = Field(
        900, ge=10, le=604_800, description="data judged older than this while requests flow raises DriftDataStale"
    )


# Settings of the window drift check `modelops drift` ran before it became the monitor's view (refused with the fix).
REMOVED_DRIFT_KEYS = ("min_rows", "psi_threshold", "ks_alpha", "prediction_psi_threshold", "prediction_alpha")


class MonitorSettings(_Section):
    """Thresholds of the monitoring: drift, prediction logging, anomaly detection and the Prometheus rules.

    One source for every consumer: ``modelops drift``, the prediction log a replica writes, and the rules file
    that Prometheus (local, kind) loads; the aws stack's alarms can read the same fields.
    """

    window: int = Field(
        500,
        ge=20,
        le=1_000_000,
        description="newest logged rows the quality suite replays and `modelops drift` describes (not its verdict)",
    )
    log_dir: str = Field(
        "",
        description="where replicas write prediction logs (relative to the project); empty: predictions/ in the "
        "stack's own directory, so two stacks never share a log",
    )
    log_sample_rate: float = Field(
        1.0, ge=0, le=1, description="fraction of requests whose rows are logged (0: prediction logging off)"
    )
    feedback_file: str = Field(
        ".work/feedback.jsonl",
        min_length=1,
        description="JSONL of ground-truth labels by request id and row (relative to the project)",
    )
    log_max_bytes: int = Field(
        10_485_760, ge=65_536, le=10_737_418_240, description="size at which a replica's prediction log rotates"
    )
    log_backups: int = Field(
        3, ge=1, le=100, description="rotated files kept per writer (disk use <= (backups + 1) * log_max_bytes)"
    )
    log_queue_bytes: int = Field(
        33_554_432,
        ge=65_536,
        le=4_294_967_296,
        description="bytes of records a replica's worker holds for the log at most (more are dropped and counted)",
    )
    log_retention_s: float = Field(
        604_800, ge=60, le=31_536_000, description="log files not written for this many seconds are deleted"
    )
    labels_db: str = Field(
        "",
        description="SQLite store of ground-truth labels (relative to the project); empty: labels.sqlite in the "
        "stack's own directory",
    )
    concept_window: int = Field(
        500, ge=20, le=1_000_000, description="newest labelled rows realised accuracy is measured on"
    )
    concept_delta: float = Field(
        0.002, gt=0, lt=1, description="ADWIN confidence of the concept-drift detector (smaller: fewer false alarms)"
    )
    anomaly_window: int = Field(
        60, ge=5, le=100_000, description="points of history a point is compared with (rolling median and MAD)"
    )
    anomaly_threshold: float = Field(
        6.0, gt=0, le=100, description="robust z-score (distance from the median in MADs) that flags an anomaly"
    )
    rate_window_s: int = Field(60, ge=10, le=3600, description="range of rate() in the Prometheus rules, seconds")
    alert_for_s: int = Field(60, ge=0, le=86_400, description="seconds a condition holds before its alert fires")
    replica_down_for_s: int = Field(
        15, ge=0, le=86_400, description="seconds a replica is unreachable before the replica-down alert fires"
    )
    scrape_interval_s: int = Field(5, ge=1, le=300, description="Prometheus scrape and rule evaluation interval")
    drift: DriftWatchSettings = DriftWatchSettings()
    alert_webhook: str | None = Field(
        None, description="http(s) URL Alertmanager posts alerts to (its webhook JSON); none: alerts stay listed"
    )
    alert_group_wait_s: int = Field(30, ge=0, le=3600, description="Alertmanager waits this long to group alerts")
    alert_group_interval_s: int = Field(
        300, ge=1, le=86_400, description="Alertmanager's wait before it notifies changes of a group"
    )
    alert_repeat_page_s: int = Field(3600, ge=1, le=604_800, description="a still-firing page is re-sent this often")
    alert_repeat_ticket_s: int = Field(
        86_400, ge=1, le=604_800, description="a still-firing ticket is re-sent this often"
    )
    anomaly_for_s: int = Field(
        60, ge=0, le=86_400, description="seconds an anomaly holds before AnomalyFlagged fires (the rule's for:)"
    )
    anomaly_min_events: int = Field(
        5, ge=1, le=1_000_000, description="errors (or requests, for a traffic drop) a rate window needs to count"
    )
    max_invalid_ratio: float = Field(
        0.05, gt=0, le=1, description="share of requests refused 422 (input contract) that raises InvalidInputRatio"
    )

    @field_validator("alert_webhook")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(
                f"must be an http:// or https:// URL with a host, like https://alerts.example.com/hook, got "
                f"{value!r}: set modelops:monitor.alert_webhook to your receiver's URL, or remove it"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _removed_drift_thresholds(cls, data: Any) -> Any:
        # The window check's thresholds are gone: `modelops drift` now replays the monitor's detector.
        removed = sorted(set(data) & set(REMOVED_DRIFT_KEYS)) if isinstance(data, dict) else []
        if removed:
            raise ValueError(
                f"{', '.join(removed)} no longer exist: `modelops drift` judges with the drift monitor's detector, set "
                "by modelops:monitor.drift (max_false_alarms_per_day, min_shift_sd, min_chunk_rows; "
                "docs/monitoring-watch.md). Delete them from the stack file"
            )
        return data

    @model_validator(mode="after")
    def _anomaly_window_covers_rate_window(self) -> MonitorSettings:
        if self.anomaly_window * self.scrape_interval_s < self.rate_window_s:
            raise ValueError(
                f"anomaly_window ({self.anomaly_window}) x scrape_interval_s ({self.scrape_interval_s}) must cover "
                f"rate_window_s ({self.rate_window_s}): raise anomaly_window"
            )
        return self


class CanarySettings(_Section):
    """The canary after a promote verdict: live traffic moves to the candidate in steps, each judged on live metrics.

    Read by modelops/canary.py. Every window compares the candidate colour with the live one on the same traffic:
    error ratio, p95 against the live colour's, and (with Prometheus running) alerts that started firing."""

    enabled: bool = Field(
        False, description="promote through the canary by default (`modelops gate --canary/--no-canary` overrides it)"
    )
    steps: list[int] = Field(
        [5, 25, 50, 100], min_length=1, description="candidate's share of live traffic per step, %, ending at 100"
    )
    window_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="longest an analysis interval lasts while it gathers the requests its tests need; an interval "
        "with too few by then is inconclusive (missing data)",
    )
    min_requests: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="requests per colour an interval needs at least (the tests' power usually asks more: "
        "modelops/canary_stats.py)",
    )
    check_interval_s: float = Field(
        2.0, gt=0, le=600, description="seconds between looks at the current interval (a clear failure aborts early)"
    )
    alpha: float = Field(
        0.01, gt=0, lt=0.5, description="false-alarm rate of each interval's tests (Fisher on errors, Mann-Whitney)"
    )
    power: float = Field(0.8, ge=0.5, lt=1, description="chance an interval catches a candidate as bad as detect_*")
    detect_error_ratio: float = Field(
        0.05, gt=0, lt=1, description="candidate error ratio an interval must catch with `power` (sizes intervals)"
    )
    detect_slower_share: float = Field(
        0.75,
        gt=0.5,
        lt=1,
        description="share of candidate requests slower than live ones an interval must catch with `power`",
    )
    failure_limit: int = Field(
        1, ge=0, le=100, description="failed intervals tolerated; one more rolls back (Argo failureLimit)"
    )
    inconclusive_limit: int = Field(
        2, ge=0, le=100, description="inconclusive intervals (missing data) tolerated, pausing; one more rolls back"
    )
    intervals_per_step: int = Field(1, ge=1, le=100, description="passed intervals a step needs before the next")
    max_error_ratio: float = Field(
        0.01,
        ge=0,
        le=1,
        description="an error-ratio difference fails an interval only when significant AND the candidate's ratio is "
        "over this",
    )
    max_p95_rise: float = Field(
        0.5, ge=0, le=100, description="largest rise of the candidate's p95 over the live colour's (fraction)"
    )
    min_p95_rise_ms: float = Field(
        25.0, ge=0, le=60_000, description="a p95 rise smaller than this is noise, whatever its ratio"
    )
    abort_on_alerts: bool = Field(
        True, description="roll back when an alert starts firing during the canary (needs Prometheus running)"
    )

    @field_validator("steps")
    @classmethod
    def _steps_end_at_100(cls, steps: list[int]) -> list[int]:
        if any(not 1 <= s <= 100 for s in steps) or sorted(set(steps)) != steps or steps[-1] != 100:
            raise ValueError(f"must be strictly increasing percentages in 1..100 ending at 100, got {steps}")
        return steps


class PromotionSettings(_Section):
    """What follows a switch (modelops/bake.py): the new live version watched on client traffic for ``bake_s``
    (rolled back automatically on a breach), and the previous colour kept up for ``rollback_window_s`` so that a
    rollback in that window is a switch, not a cold boot (as Argo Rollouts' scaleDownDelaySeconds)."""

    bake_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="seconds the new live version is watched on client traffic after a switch (or a canary's 100 % "
        "step) before the promotion is final; 0 turns the bake off",
    )
    bake_window_s: float = Field(
        30.0, ge=1, le=3600, description="seconds of client traffic each judged window of the bake covers"
    )
    bake_min_requests: int = Field(
        20, ge=1, le=1_000_000, description="requests a bake window needs to be judged (fewer: not judged, no breach)"
    )
    bake_failure_limit: int = Field(
        2, ge=1, le=100, description="consecutive breached windows that roll the promotion back (one may be noise)"
    )
    bake_max_rss_growth_mb_per_h: float = Field(
        256.0,
        gt=0,
        le=1_000_000,
        description="the live replicas' memory (RSS, all workers) may grow at most this fast over the bake, MB/hour",
    )
    rollback_window_s: float = Field(
        600.0,
        ge=0,
        le=86_400,
        description="seconds the previous colour stays up (as it was) after a switch: a rollback within it, the "
        "bake's included, is a switch; 0 retires it at once",
    )

    @property
    def watched(self) -> bool:
        """Whether a switch hands over to the watcher process (a bake, or a warm window to close later)."""
        return self.bake_s > 0 or self.rollback_window_s > 0


Colour = Literal["blue", "green"]


class ColourPorts(_Section):
    """One port per colour: each pool reachable on its own, beside the live entry point."""

    blue: int = Field(ge=1, le=65535, description="port of the blue pool")
    green: int = Field(ge=1, le=65535, description="port of the green pool")

    @model_validator(mode="after")
    def _distinct(self) -> ColourPorts:
        if self.blue == self.green:
            raise ValueError(f"blue and green need different ports, both are {self.blue}")
        return self

    def ports(self) -> tuple[int, int]:
        return self.blue, self.green


# kind v0.29.0's node image for Kubernetes 1.33 (digest from the kind release notes): a pinned cluster version.
DEFAULT_KIND_NODE_IMAGE = "kindest/node:v1.33.1@sha256:050072256b9a903bd914c0b2866828150cb229cea0efe5892e2b644d5dd3b34f"
# The values CloudWatch Logs accepts for retention_in_days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)  # fmt: skip
# ALB subnets need at least a /27 (AWS requires 8 free addresses per subnet for the load balancer to scale).
LARGEST_SUBNET_PREFIX = 27


class LoadGeneratorSettings(_Section):
    """Locust in the cluster, beside the service (stacks/kind/load_generator.py): for a candidate that outgrows one
    generator machine. `modelops gate --stack kind --generator cluster` runs each load from a master Job it creates
    with these workers."""

    enabled: bool = Field(
        False, description="render the in-cluster load generator (locustfile ConfigMap, master Service, workers)"
    )
    workers: int = Field(2, ge=1, le=64, description="Locust worker pods a load uses (the master expects them all)")
    image: str = Field(
        "locustio/locust:2.47.0",
        pattern=r"^[^\s]+:[^\s]+$",
        description="Locust image (name:tag, ideally @sha256 pinned), the version of the project's locust pin",
    )
    cpu_per_worker: float = Field(1.0, gt=0, le=16, description="CPU request = limit per worker pod, cores")
    memory_mb: int = Field(512, ge=128, le=16_384, description="memory request = limit per worker and master pod")
    ready_timeout_s: float = Field(
        180,
        ge=10,
        le=3600,
        description="how long the gate waits for the workers to connect and for the master to start",
    )


class KindSettings(_Section):
    cluster_name: str = Field(
        "modelops", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40, description="kind cluster name"
    )
    create_cluster: bool = Field(True, description="create the kind cluster; false uses kubeconfig/context")
    kubeconfig: str | None = Field(None, description="path of an existing kubeconfig (create_cluster: false)")
    context: str | None = Field(None, description="kubeconfig context to use (create_cluster: false)")
    node_image: str = Field(
        DEFAULT_KIND_NODE_IMAGE,
        pattern=r"^[^\s]+:[^\s]+$",
        description="kind node image (name:tag, ideally @sha256 pinned) when the stack creates the cluster",
    )
    namespace: str = Field(
        "modelops",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="namespace of the model service (labelled for the restricted Pod Security Standard)",
    )
    node_port: int = Field(30080, ge=30000, le=32767, description="NodePort of the model Service")
    host_port: int = Field(8080, ge=1, le=65535, description="host port kind maps to the NodePort")
    pool_node_ports: ColourPorts = Field(
        ColourPorts(blue=30081, green=30082),
        description="NodePorts of the per-colour Services (30000-32767): each pool alone, for the gate",
    )
    pool_host_ports: ColourPorts = Field(
        ColourPorts(blue=8081, green=8082),
        description="host ports kind maps to the per-colour NodePorts (http://127.0.0.1:<port>)",
    )
    live_colour: Colour = Field(
        "blue", description="pool the Service selects when created; promotion switches it afterwards"
    )
    install_nvidia_device_plugin: bool = Field(
        False,
        description="install NVIDIA's device plugin DaemonSet (deploy.accelerator: nvidia on a cluster whose GPU "
        "nodes lack one); the nodes need the NVIDIA driver and container toolkit themselves",
    )
    gpu_node_selector: dict[str, str] = Field(
        {},
        description="node labels GPU pods must match (deploy.accelerator: nvidia), e.g. "
        "{nvidia.com/gpu.present: 'true'} where GPU feature discovery labels the nodes",
    )
    install_metrics_server: bool = Field(
        True, description="install metrics-server (the HPA needs it); false when the cluster already has one"
    )
    load_generator: LoadGeneratorSettings = Field(
        LoadGeneratorSettings(), description="Locust master and workers in the cluster (off by default)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> KindSettings:
        if not self.create_cluster and not (self.kubeconfig or self.context):
            raise ValueError("create_cluster is false: set kubeconfig or context to the cluster to use")
        outside = [p for p in self.pool_node_ports.ports() if not 30000 <= p <= 32767]
        if outside:
            raise ValueError(f"pool_node_ports must be NodePorts (30000-32767), got {outside}")
        if self.node_port in self.pool_node_ports.ports():
            raise ValueError(f"pool_node_ports must not reuse node_port {self.node_port}")
        if self.host_port in self.pool_host_ports.ports():
            raise ValueError(f"pool_host_ports must not reuse host_port {self.host_port}")
        return self


class AwsSettings(_Section):
    region: str = Field("us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$", description="AWS region of every resource")
    vpc_cidr: str = Field("10.20.0.0/16", description="VPC CIDR block, /16 to /24")
    az_count: int = Field(2, ge=2, le=6, description="availability zones (the ALB needs at least 2)")
    nat_per_az: bool = Field(False, description="one NAT gateway per AZ (resilient) instead of one (cheaper)")
    interface_endpoints: bool = Field(
        True,
        description="VPC interface endpoints for ECR, CloudWatch Logs, SSM and Auto Scaling, so instances boot "
        "and report ready without the NAT gateway (about 7.3 USD a month per endpoint and AZ)",
    )
    instance_type: str = Field(
        "c7i.large", pattern=r"^[a-z0-9-]+[.][a-z0-9]+$", description="EC2 instance type of both pools"
    )
    ami_id: str | None = Field(
        None,
        pattern=r"^ami-[0-9a-f]{8,17}$",
        description="AMI of both launch templates, pinned; null looks up the newest Amazon Linux 2023 AMI once "
        "(at creation) and `pulumi up` prints the id to pin",
    )
    root_volume_gb: int = Field(30, ge=8, le=1024, description="encrypted gp3 root volume per instance, GiB")
    health_check_grace_s: int = Field(
        300,
        ge=0,
        le=7200,
        description="seconds a new instance has to pass /readyz (boot + image pull + model load)",
    )
    instance_refresh_min_healthy: int = Field(
        100,
        ge=0,
        le=100,
        description="% of capacity kept healthy while an instance refresh replaces instances",
    )
    live_colour: Colour = Field(
        "blue",
        description="target group the listener sends traffic to when created; promotion shifts it afterwards",
    )
    certificate_arn: str | None = Field(
        None, pattern=r"^arn:aws[-a-z]*:acm:", description="ACM certificate for HTTPS; none serves plain HTTP"
    )
    test_cidrs: list[str] = Field(
        [],
        description="IPv4 CIDR blocks (the gate's load generator) allowed to reach each colour's own test "
        "listener; empty: no test listeners, and `modelops gate --stack aws` needs --url",
    )
    test_ports: ColourPorts = Field(
        ColourPorts(blue=8081, green=8082),
        description="ALB ports of the per-colour test listeners (only with test_cidrs)",
    )
    deletion_protection: bool = Field(True, description="ALB deletion protection")
    access_logs: bool = Field(True, description="ALB access logs to an S3 bucket of this stack")
    log_retention_days: int = Field(365, description="CloudWatch Logs retention (flow logs, container logs)")
    alarm_email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="address subscribed to the alarm topic (SNS asks it to confirm); none: subscribe yourself",
    )
    monthly_budget_usd: float | None = Field(
        None, gt=0, description="an AWS Budgets cost budget for the account, alerting the alarm topic; none: no budget"
    )
    requests_per_target_per_minute: float = Field(
        600.0,
        gt=0,
        description="ASG target tracking value with autoscale.metric in_flight (CloudWatch has no in-flight count "
        "per target), unless the promotion of the live version left a capacity plan",
    )

    @property
    def architecture(self) -> Literal["x86_64", "arm64"]:
        """CPU architecture of instance_type: a "g" among the letters after the generation digit means Graviton."""
        family = self.instance_type.split(".", 1)[0]
        match = re.match(r"^[a-z-]+\d+([a-z-]*)$", family)
        return "arm64" if match and "g" in match.group(1) else "x86_64"

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 CIDR block like 10.20.0.0/16 ({exc})") from None
        if not 16 <= net.prefixlen <= 24:
            raise ValueError(f"prefix length must be /16 to /24, got /{net.prefixlen}")
        return value

    @field_validator("test_cidrs")
    @classmethod
    def _test_cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                net = ipaddress.IPv4Network(value, strict=True)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not an IPv4 CIDR block like 203.0.113.7/32 ({exc})") from None
            if net.prefixlen == 0:
                # The test listeners reach a candidate that has not passed the gate: never the whole internet.
                raise ValueError(f"{value} opens the candidate pool to the whole internet: list the gate's addresses")
        return values

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"must be one of the values CloudWatch Logs accepts: {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return value

    @model_validator(mode="after")
    def _sizes(self) -> AwsSettings:
        taken = [p for p in self.test_ports.ports() if p in (80, 443)]
        if taken:
            raise ValueError(f"test_ports must not reuse the live listener ports 80/443, got {taken}")
        prefix = subnet_prefix(self.vpc_cidr, self.az_count)
        if prefix > LARGEST_SUBNET_PREFIX:
            raise ValueError(
                f"vpc_cidr {self.vpc_cidr} is too small for az_count {self.az_count}: {2 * self.az_count} subnets "
                f"would be /{prefix}, the ALB needs /{LARGEST_SUBNET_PREFIX} or larger; use a larger vpc_cidr "
                "or fewer AZs"
            )
        return self


def subnet_prefix(vpc_cidr: str, az_count: int) -> int:
    """Prefix length of each of the 2 * az_count subnets (one public, one private per AZ) carved from vpc_cidr."""
    return ipaddress.IPv4Network(vpc_cidr).prefixlen + math.ceil(math.log2(2 * az_count))


class StackConfig(_Section):
    stack: str = Field(min_length=1, description="the stack name (file stacks/Pulumi.<stack>.yaml)")
    target: Target = Field(description="where it runs")
    bento: str = Field("", description="bento tag to deploy; empty means the one `modelops build` made last")
    deploy: DeploySettings = DeploySettings()
    limits: LimitsSettings = LimitsSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    cache: CacheSettings = CacheSettings()
    slo: SloSettings = SloSettings()
    gate: GateSettings = GateSettings()
    local: LocalSettings = LocalSettings()
    kind: KindSettings = KindSettings()
    aws: AwsSettings = AwsSettings()
    monitor: MonitorSettings = MonitorSettings()
    canary: CanarySettings = CanarySettings()
    autoscale: AutoscaleSettings = AutoscaleSettings()
    promotion: PromotionSettings = PromotionSettings()

    @model_validator(mode="after")
    def _replicas_within_bounds(self) -> StackConfig:
        """Where something scales the pool (the local supervisor, an HPA, an ASG), it starts within its bounds."""
        deploy = self.deploy
        scaled = self.autoscale.enabled or self.target != "local"
        if scaled and not deploy.min_replicas <= deploy.replicas <= deploy.max_replicas:
            raise ValueError(
                f"modelops:deploy needs min_replicas <= replicas <= max_replicas when the pool is autoscaled, got "
                f"{deploy.min_replicas} <= {deploy.replicas} <= {deploy.max_replicas}: change deploy.replicas "
                "or deploy.min_replicas/max_replicas"
            )
        return self

    @model_validator(mode="after")
    def _gate_rows_exceed_the_cache(self) -> StackConfig:
        """With the cache on, the gate's rows must outnumber it, or every request after the first lap is a hit and
        the gate measures the cache, not the model."""
        gate, cache = self.gate, self.cache
        if cache.enabled and gate.zipf_s == 0:
            raise ValueError(
                "modelops:gate.zipf_s is 0 (the gate cycles 64 fixed bodies) while modelops:cache is on: every "
                "request would be a cache hit; set gate.zipf_s > 0 (1.1 is typical)"
            )
        if cache.enabled and gate.distinct_rows <= cache.max_entries:
            raise ValueError(
                f"modelops:gate.distinct_rows ({gate.distinct_rows}) must exceed modelops:cache.max_entries "
                f"({cache.max_entries}) while the cache is on: raise gate.distinct_rows (e.g. to "
                f"{2 * cache.max_entries}) or lower cache.max_entries"
            )
        return self

    def with_overrides(self, **sections: dict[str, Any]) -> StackConfig:
        """A re-validated copy with some section keys replaced, e.g. ``with_overrides(deploy={"replicas": 3})``."""
        data = self.model_dump()
        for section, values in sections.items():
            if isinstance(data.get(section), dict):
                data[section] = {**data[section], **values}
            else:
                data[section] = values
        return validate_settings(data, source="the command line")


def stack_file(stack: str, stacks_dir: Path | None = None) -> Path:
    return (stacks_dir or STACKS_DIR) / f"Pulumi.{stack}.yaml"


def available_stacks(stacks_dir: Path | None = None) -> list[str]:
    found = (stacks_dir or STACKS_DIR).glob("Pulumi.*.yaml")
    return sorted({p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in found} | {DEMO_STACK})


# `make demo` runs on a stack of its own, so it never stops or rewrites the history of a deployment a user has up on
# `local`: the same settings as the local stack (no file of its own to drift from it), its own state and history.
DEMO_STACK = "demo"
DEMO_BASE_STACK = "local"


def load_stack_config(stack: str, stacks_dir: Path | None = None) -> StackConfig:
    """Read and validate ``stacks/Pulumi.<stack>.yaml``. Raises :class:`ConfigError` naming the key and the fix.
    The demo's stack, without a file of its own, is the local stack's settings under the name ``demo``."""
    path = stack_file(stack, stacks_dir)
    if stack == DEMO_STACK and not path.is_file():
        return load_stack_config(DEMO_BASE_STACK, stacks_dir).model_copy(update={"stack": DEMO_STACK})
    if not path.is_file():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise ConfigError(f"no stack named {stack!r}: {path} does not exist (stacks here: {known})")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    raw = document.get("config") if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must have a top-level 'config:' mapping of '{PROJECT}:<key>' settings")
    settings = {"stack": stack}
    for key, value in raw.items():
        namespace, _, name = str(key).partition(":")
        if namespace == PROJECT and name:
            settings[name] = value
        # Other namespaces (aws:region, kubernetes:context …) belong to Pulumi providers, not to us.
    return validate_settings(settings, source=_display(path))


def from_pulumi() -> StackConfig:
    """Read the settings through Pulumi config, inside ``pulumi up`` (or under mocks with set_all_config)."""
    import pulumi  # only the Pulumi program needs it

    cfg = pulumi.Config(PROJECT)
    settings: dict[str, Any] = {"stack": pulumi.get_stack()}
    for name, field in StackConfig.model_fields.items():
        if name == "stack":
            continue
        plain = field.annotation is str or name == "target"
        value = cfg.get(name) if plain else cfg.get_object(name)
        if value is not None:
            settings[name] = value
    return validate_settings(settings, source=f"stacks/Pulumi.{settings['stack']}.yaml")


def validate_settings(settings: dict[str, Any], source: str) -> StackConfig:
    try:
        return StackConfig.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _explain(exc: ValidationError, source: str) -> str:
    lines = [f"invalid settings in {source}:"]
    schema = StackConfig.model_json_schema()
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        key = f"{PROJECT}:{'.'.join(loc)}" if loc else f"{PROJECT}:<root>"
        if error["type"] == "extra_forbidden":
            siblings = _field_names(schema, loc[:-1])
            lines.append(f"  - {key}: unknown key. Allowed keys here: {', '.join(siblings)}.")
            continue
        got = error.get("input")
        got_text = "" if isinstance(got, dict) or error["type"] == "missing" else f" (got {got!r})"
        allowed = _allowed(schema, loc)
        hint = f" Allowed: {allowed}." if allowed else ""
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {key}: {message}{got_text}.{hint}")
    lines.append(f"Fix the key(s) above in {source}.")
    return "\n".join(lines)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in node and len(node["allOf"]) == 1:
        return _resolve(schema, node["allOf"][0])
    return node


def _node(schema: dict, loc: list[str]) -> dict | None:
    node: dict | None = schema
    for part in loc:
        node = _resolve(schema, node or {})
        props = node.get("properties")
        if props and part in props:
            node = props[part]
        elif node.get("type") == "array" and part.isdigit():
            node = node.get("items", {})
        else:
            return None
    return _resolve(schema, node) if node is not None else None


def _field_names(schema: dict, loc: list[str]) -> list[str]:
    node = _node(schema, loc) or {}
    return sorted(node.get("properties", {}))


def _allowed(schema: dict, loc: list[str]) -> str:
    node = _node(schema, loc)
    if not node:
        return ""
    if "enum" in node:
        return "one of " + ", ".join(repr(v) for v in node["enum"])
    if "anyOf" in node:
        parts = [_describe(_resolve(schema, option)) for option in node["anyOf"]]
        text = " or ".join(p for p in parts if p)
    else:
        text = _describe(node)
    description = node.get("description")
    return f"{text} — {description}" if description and text else (text or description or "")


def _describe(node: dict) -> str:
    kind = node.get("type", "")
    if "const" in node:
        return repr(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(repr(v) for v in node["enum"])
    bounds = []
    for key, sign in (
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ):
        if key in node:
            bounds.append(f"{sign} {node[key]}")
    if "pattern" in node:
        bounds.append(f"matching {node['pattern']}")
    if kind == "array":
        item = node.get("items", {}).get("type", "value")
        size = f"at least {node['minItems']} " if "minItems" in node else ""
        return f"a list of {size}{item}s"
    if kind == "null":
        return "null"
    if kind == "object":
        return ""
    return " ".join(
        [
            {
                "integer": "an integer",
                "number": "a number",
                "string": "a string",
                "boolean": "true or false",
            }.get(kind, kind),
            ", ".join(bounds),
        ]
    ).strip()
