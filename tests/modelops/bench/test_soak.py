"""The soak's measurements: every replica's RSS and open FDs, and the drift judged against the goal."""

from __future__ import annotations

from types import SimpleNamespace

from modelops.bench.soak import SoakSample, replica_usage, summarise_soak

# The load figures summarise_soak reads (a LoadResult has them as properties).
LOAD = SimpleNamespace(requests=100, failures=0, rps=10.0, p95_ms=2.0)


def samples(rss: list[int], fds: list[int]) -> list[SoakSample]:
    pairs = enumerate(zip(rss, fds, strict=True))
    return [SoakSample(t=10.0 * i, rss_bytes={"blue-1": r}, fds={"blue-1": f}) for i, (r, f) in pairs]


def test_rss_within_5_percent_and_flat_fds_meet_the_goal() -> None:
    replica = summarise_soak(samples([100 << 20, 103 << 20, 104 << 20], [40, 41, 40]), LOAD, 1)["replicas"]["blue-1"]
    assert replica["met"], replica
    assert abs(replica["rss_drift"] - 0.04) < 1e-9


def test_growing_rss_or_leaking_fds_miss_the_goal() -> None:
    grows = summarise_soak(samples([100 << 20, 110 << 20], [40, 40]), LOAD, 1)["replicas"]["blue-1"]
    leaks = summarise_soak(samples([100 << 20, 100 << 20], [40, 52]), LOAD, 1)["replicas"]["blue-1"]
    assert not grows["met"] and grows["rss_drift"] > 0.05
    assert not leaks["met"] and leaks["fd_drift"] == 12


def test_replica_usage_counts_every_replicas_memory_and_descriptors(live_deployment) -> None:
    rss, fds = replica_usage(live_deployment)
    assert set(rss) == {"blue-1", "blue-2"}, rss
    assert all(v > 50 << 20 for v in rss.values()), f"a BentoML replica uses more than 50 MB: {rss}"
    assert all(v > 5 for v in fds.values()), fds
