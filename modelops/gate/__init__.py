"""The promotion gate: measure a candidate with Locust suites, judge the measurements, decide, promote or reject.

run        orchestration: deploy the candidate beside the live version, run the suites, write the outputs
suites     measurement: each suite loads the candidate and returns typed figures
judge      the verdict rules: pure functions from figures and thresholds to a suite result (unit-tested in ms)
loadgen    Locust subprocesses, with the load generator's and the machine's CPU sampled while they run
capacity   step-load curves: good answers per step, knee, efficiency, the capacity plan
summary    summary.json: the one model of a run, from which the report and the exit status derive
report     report.html
"""
