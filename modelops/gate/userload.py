"""The gate's load as a user's own bento needs it: gate.endpoint, gate.payload_file and gate.locustfile.

Every suite's load goes through :func:`apply` (Suites.load), so one setting reaches them all:
  gate.endpoint      the path loaded (Locust's --endpoint): a service with several JSON endpoints is no longer
                     refused for want of choosing one;
  gate.payload_file  JSON lines of request bodies, converted once per gate run into the JSON list Locust's
                     --payload-file takes; bodies the user chose replace bodies synthesised from the schema;
  gate.locustfile    the user's own locustfile, whose User classes replace ours (loadtests/locustfile.py loads it
                     from MODELOPS_USER_LOCUSTFILE and keeps recording every request for the gate's figures).
A load that names its own endpoint or bodies (the peer benchmark's) keeps them.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from modelops.gate.loadgen import LoadSpec
from stacks.config import PROJECT_ROOT, ConfigError, GateSettings

ENV_USER_LOCUSTFILE = "MODELOPS_USER_LOCUSTFILE"  # loadtests/locustfile.py reads it
PAYLOADS = "user-payloads.json"


def _path(value: str, key: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else PROJECT_ROOT / path
    if not path.is_file():
        raise ConfigError(f"gate.{key}: no such file {path}: fix modelops:gate.{key} in the stack file")
    return path


def payloads_from_jsonl(source: Path, out: Path) -> Path:
    """The request bodies of a JSON lines file as a JSON list (what Locust's --payload-file takes)."""
    bodies = []
    for number, line in enumerate(source.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            bodies.append(json.loads(line))
        except ValueError as exc:
            raise ConfigError(
                f"gate.payload_file {source}, line {number}: not JSON ({exc}): one request body per line"
            ) from None
    if not bodies:
        raise ConfigError(f"gate.payload_file {source} holds no request body: one JSON body per line")
    out.write_text(json.dumps(bodies))
    return out


def apply(spec: LoadSpec, gate: GateSettings, run_dir: Path) -> LoadSpec:
    """``spec`` with the user's endpoint, bodies and locustfile, where the settings name them."""
    changes: dict = {}
    if gate.endpoint and spec.endpoint is None:
        changes["endpoint"] = gate.endpoint
    if gate.payload_file and spec.payload_file is None:
        converted = run_dir / PAYLOADS
        if not converted.exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            payloads_from_jsonl(_path(gate.payload_file, "payload_file"), converted)
        changes["payload_file"] = converted
    if gate.locustfile:
        changes["extra_env"] = {**spec.extra_env, ENV_USER_LOCUSTFILE: str(_path(gate.locustfile, "locustfile"))}
    return replace(spec, **changes) if changes else spec
