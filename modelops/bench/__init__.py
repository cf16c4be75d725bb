"""`make bench` / `modelops bench`: the project's performance figures, measured side by side in one run.

core    throughput and latency variants of one replica (no-op floor, naive, batched, direct vs HAProxy, OpenMP
        threads unset vs set), in interleaved rounds added until each judged ratio is conclusive or time is up
noise   a figure or ratio with its spread across rounds and a verdict: met / missed / inconclusive
tables  the summary as terminal tables
soak    production load for minutes: replica RSS and open file descriptors over time
cache   the prediction cache off vs on under a Zipf-distributed load (`modelops bench --cache`)
"""

from modelops.bench.core import BenchOptions, run_bench
from modelops.bench.soak import SoakSample, replica_usage, run_soak, summarise_soak

__all__ = ["BenchOptions", "SoakSample", "replica_usage", "run_bench", "run_soak", "summarise_soak"]
