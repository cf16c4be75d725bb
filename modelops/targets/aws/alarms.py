"""The stack's CloudWatch alarms as the driver reads and steers them (stacks/aws/alarms.py makes them).

- Which alarms concern a pool: its colour's and the load balancer's own. The healthy-hosts alarm (HealthyHostCount
  below deploy.min_replicas) concerns only the colour that takes traffic: an idle colour has no hosts by design.
- A pool that takes no traffic can afford to wait: alarms of a candidate that just booted or was just used for a
  failover test (a killed replica is an unhealthy host for a minute or two) go back to OK within the alarms'
  evaluation window. Before a switch the driver waits for that, bounded, instead of refusing a healthy candidate.
- The healthy-hosts alarm acts (pages) only for the live colour; a full shift moves its actions with the traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

# stacks/aws/alarms.py: the keys of the alarm_names output (kept literal here: modelops does not import Pulumi code).
LOAD_BALANCER = "load_balancer"
HEALTHY_HOSTS = "healthy_hosts"
# stacks/aws/alarms.py evaluates 3 one-minute periods (2 of them breaching raise the alarm); CloudWatch publishes ALB
# metrics up to a minute late. An alarm raised by something that has ended is back to OK within this many seconds.
SETTLE_S = 3 * 60 + 60


class StackAlarms:
    """Reads the alarms named in the stack outputs (``alarm_names``); steers the healthy-hosts alarm's actions."""

    def __init__(
        self,
        cloudwatch: Any,
        exported: Mapping[str, Any],
        *,
        settle_s: float = SETTLE_S,
        poll_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cloudwatch = cloudwatch
        self.exported = dict(exported or {})
        self.settle_s = settle_s
        self.poll_s = poll_s
        self._clock = clock
        self._sleep = sleep

    def names(self, colour: str | None = None, live: bool = True) -> list[str]:
        """The alarm names of ``colour`` and the load balancer's own (all with None). A colour that is not live
        has no healthy-hosts alarm to speak of. Outputs made before alarms were per colour hold one flat map: every
        alarm then concerns both colours."""
        if not all(isinstance(v, dict) for v in self.exported.values()):
            return [str(v) for v in self.exported.values() if not isinstance(v, dict)]
        groups = [LOAD_BALANCER, colour] if colour else list(self.exported)
        return [
            str(name)
            for group in groups
            for key, name in dict(self.exported.get(group) or {}).items()
            if live or group == LOAD_BALANCER or key != HEALTHY_HOSTS
        ]

    def states(self, names: list[str]) -> dict[str, str]:
        """{alarm name: OK | ALARM | INSUFFICIENT_DATA | MISSING}."""
        if not names:
            return {}
        found: dict[str, str] = {}
        for page in self.cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=names):
            for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                found[alarm["AlarmName"]] = alarm["StateValue"]
        return {name: found.get(name, "MISSING") for name in names}

    def firing(self, names: list[str], wait: bool) -> list[str]:
        """The alarms of ``names`` in ALARM. With ``wait``, first give firing ones up to ``settle_s`` to return to
        OK (polling): what still fires then is reported."""
        firing = sorted(n for n, s in self.states(names).items() if s == "ALARM")
        if not wait or not firing:
            return firing
        deadline = self._clock() + self.settle_s
        while firing and self._clock() < deadline:
            self._sleep(self.poll_s)
            firing = sorted(n for n, s in self.states(firing).items() if s == "ALARM")
        return firing

    def follow_traffic(self, live: str) -> None:
        """The healthy-hosts alarm of ``live`` acts (notifies); the other colours' do not."""
        for colour, group in self.exported.items():
            if colour == LOAD_BALANCER or not isinstance(group, dict) or HEALTHY_HOSTS not in group:
                continue
            name = [str(group[HEALTHY_HOSTS])]
            if colour == live:
                self.cloudwatch.enable_alarm_actions(AlarmNames=name)
            else:
                self.cloudwatch.disable_alarm_actions(AlarmNames=name)
