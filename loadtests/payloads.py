"""Request payloads derived from a service's OpenAPI document — nothing here knows the reference model.

A BentoML service publishes its API at ``/docs.json``. The load test picks a JSON ``POST`` endpoint there and builds
request bodies from its schema: values come from the schema's ``examples`` when the service declares some (the
reference service declares real rows from its held-out set), otherwise they are synthesised within the schema's
bounds. The first array met below the root is the batch: its length is ``rows``.

Pure Python, no Locust import: usable from a locustfile, a test, or a script.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import pickle
import random
import urllib.request
from dataclasses import dataclass
from typing import Any

HEALTH_PATHS = {"/livez", "/readyz", "/healthz", "/metrics"}


class PayloadError(ValueError):
    pass


@dataclass(frozen=True)
class Endpoint:
    path: str
    request_schema: dict
    response_is_list: bool


def fetch_openapi(base_url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(base_url.rstrip("/") + "/docs.json", timeout=timeout) as response:
        return json.load(response)


def json_endpoints(openapi: dict) -> list[str]:
    found = []
    for path, operations in openapi.get("paths", {}).items():
        post = operations.get("post") if isinstance(operations, dict) else None
        if path in HEALTH_PATHS or not post:
            continue
        if "application/json" in post.get("requestBody", {}).get("content", {}):
            found.append(path)
    return found


def find_endpoint(openapi: dict, path: str | None = None) -> Endpoint:
    """The endpoint to load: ``path`` if given, else the only JSON POST endpoint, else ``/predict`` if present."""
    candidates = json_endpoints(openapi)
    if path is None:
        if len(candidates) == 1:
            path = candidates[0]
        elif "/predict" in candidates:
            path = "/predict"
        else:
            raise PayloadError(f"the service has several JSON endpoints {candidates}: choose one with --endpoint")
    if path not in candidates:
        raise PayloadError(f"no JSON POST endpoint {path!r} in the service's OpenAPI (it has {candidates})")
    post = openapi["paths"][path]["post"]
    request = _resolve(openapi, post["requestBody"]["content"]["application/json"]["schema"])
    ok = post.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {})
    response = _resolve(openapi, ok.get("schema", {}))
    return Endpoint(path=path, request_schema=request, response_is_list=response.get("type") == "array")


def make_payloads(openapi: dict, endpoint: Endpoint, rows: int, count: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` distinct request bodies, each carrying ``rows`` rows (clamped to the schema's bounds)."""
    rng = random.Random(seed)
    return [_Builder(openapi, rng, rows).build(endpoint.request_schema) for _ in range(count)]


def body_with_rows(openapi: dict, endpoint: Endpoint, rows: list) -> dict[str, Any]:
    """A request body whose batch holds exactly ``rows``, unaltered (for golden checks)."""
    builder = _Builder(openapi, random.Random(0), len(rows), batch=rows)
    return builder.build(endpoint.request_schema)


def batch_size(openapi: dict, endpoint: Endpoint, rows: int) -> int:
    """How many rows a payload built for ``rows`` actually carries (the schema may clamp it)."""
    builder = _Builder(openapi, random.Random(0), rows)
    builder.build(endpoint.request_schema)
    return builder.batch_rows or 1


def batch_of(body: Any) -> list:
    """The batch array of a body built here: the first array met below the root (object keys in order)."""
    found = _first_array(body)
    if found is None:
        raise PayloadError(f"no array in the request body {json.dumps(body)[:200]}: pass --payload-file")
    return found


def _first_array(value: Any) -> list | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for item in value.values():
            found = _first_array(item)
            if found is not None:
                return found
    return None


def row_pool(openapi: dict, endpoint: Endpoint, count: int, seed: int = 0) -> list:
    """``count`` distinct rows for ``endpoint`` (what one element of its batch array holds), built like
    :func:`make_payloads` from the schema's examples or bounds, so the pool cycles through every example row."""
    per_body = batch_size(openapi, endpoint, 100)
    rows: list = []
    seen: set[str] = set()
    # Synthesised values can collide (a row of one float in [0, 1] at 6 decimals: ~200 repeats in 20,000 draws):
    # build more until ``count`` are distinct, and give up only when the schema clearly has too few distinct rows.
    for attempt in range(8):
        wanted = math.ceil(max(count - len(rows), 1) * (1.2 if attempt else 1.0) / per_body)
        for body in make_payloads(openapi, endpoint, per_body, count=wanted, seed=seed + 7919 * attempt):
            for row in batch_of(body):
                key = json.dumps(row)
                if key not in seen and len(rows) < count:
                    seen.add(key)
                    rows.append(row)
        if len(rows) == count:
            return rows
    raise PayloadError(f"could not build {count} distinct rows from the schema: lower --distinct-rows")


class Zipf:
    """Indices 0..n-1 drawn with P(i) proportional to 1 / (i + 1) ** s: index 0 is the most popular row.

    A fixed, seeded sequence; a draw is a binary search over the cumulative weights (n up to millions is fine)."""

    def __init__(self, n: int, s: float, seed: int | None = 0) -> None:
        if n < 1:
            raise PayloadError(f"--distinct-rows must be at least 1, got {n}")
        if not s > 0:
            raise PayloadError(f"--zipf-s must be positive (1.1 is a typical popularity skew), got {s}")
        self.n, self.s = n, s
        self._cumulative = list(itertools.accumulate(1.0 / (k**s) for k in range(1, n + 1)))
        self._rng = random.Random(seed)

    def probability(self, i: int) -> float:
        return (1.0 / (i + 1) ** self.s) / self._cumulative[-1]

    def __call__(self) -> int:
        return min(bisect.bisect_left(self._cumulative, self._rng.random() * self._cumulative[-1]), self.n - 1)


class _Builder:
    def __init__(self, openapi: dict, rng: random.Random, rows: int, batch: list | None = None) -> None:
        self.openapi = openapi
        self.rng = rng
        self.rows = rows
        self.batch = batch  # exact rows for the batch array (no synthesis, no variation)
        self.batch_rows: int | None = None

    def build(self, schema: dict, example: Any = None) -> Any:
        schema = _resolve(self.openapi, schema)
        if example is None and schema.get("examples"):
            example = schema["examples"][0]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            wanted = schema.get("required", list(props))
            return {name: self.build(props[name]) for name in wanted}
        if kind == "array":
            return self._array(schema, example)
        if kind in ("number", "integer"):
            return self._number(schema, example)
        if kind == "boolean":
            return bool(example) if example is not None else self.rng.random() < 0.5
        if kind == "string":
            return example if isinstance(example, str) else "x" * max(1, schema.get("minLength", 1))
        if "enum" in schema:
            return schema["enum"][0]
        raise PayloadError(f"cannot build a value for schema {json.dumps(schema)[:200]}: pass --payload-file")

    def _array(self, schema: dict, example: Any) -> list:
        low, high = schema.get("minItems", 1), schema.get("maxItems", max(1, schema.get("minItems", 1)))
        if self.batch_rows is None:  # the outermost array is the batch
            if self.batch is not None:
                self.batch_rows = len(self.batch)
                return list(self.batch)
            n = min(max(self.rows, low), high)
            self.batch_rows = n
        else:
            n = low if example is None else min(max(len(example), low), high)
        items = schema.get("items", {})
        samples = example if isinstance(example, list) and example else [None]
        return [self.build(items, samples[i % len(samples)]) for i in range(n)]

    def _number(self, schema: dict, example: Any) -> float | int:
        if isinstance(example, int | float) and not isinstance(example, bool):
            value = example * (1 + self.rng.uniform(-0.02, 0.02))  # vary examples a little: no two rows equal
        else:
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0.0))
            high = schema.get("maximum", schema.get("exclusiveMaximum", low + 1.0))
            value = self.rng.uniform(low, high)
        return round(value) if schema.get("type") == "integer" else round(value, 6)


def _resolve(openapi: dict, schema: dict) -> dict:
    while isinstance(schema, dict) and "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = openapi.get("components", {}).get("schemas", {}).get(name, {})
    return schema or {}


# ----------------------------------------------------------------------------------------------- hostile bodies
EXTREME_VALUES = {"1e300": 1e300, "-1e300": -1e300, "3.5e38": 3.5e38, "-3.5e38": -3.5e38}
NESTING_DEPTH = 10_000


@dataclass(frozen=True)
class HostileBody:
    """A request a hostile (or careless) client sends. The right answer is a 2xx or a 4xx: never a 5xx, never a
    dropped connection."""

    kind: str
    content: bytes
    content_type: str


def hostile_bodies(openapi: dict, endpoint: Endpoint, max_body_bytes: int) -> list[HostileBody]:
    """Hostile requests for ``endpoint``, derived from its schema alone (any service): schema-valid bodies with
    extreme finite numbers and the most rows the schema allows, bodies just under and just over ``max_body_bytes``,
    deeply nested JSON, and the content types a JSON API must refuse (text, form, multipart, BentoML's pickle)."""
    rng = random.Random(3)
    most = _Builder(openapi, rng, 10**9).build(endpoint.request_schema)  # clamped to maxItems by the builder
    one = _Builder(openapi, rng, 1).build(endpoint.request_schema)
    bodies = [
        HostileBody(f"extreme {name}", _dumps(_replace_numbers(one, value)), "application/json")
        for name, value in EXTREME_VALUES.items()
    ]
    bodies.append(HostileBody("max rows", _dumps(most), "application/json"))
    largest = _dumps(most)
    if len(largest) < max_body_bytes:  # padded with JSON whitespace: still the same, valid document
        bodies.append(HostileBody("just under the size limit", _pad(largest, max_body_bytes), "application/json"))
    bodies.append(HostileBody("just over the size limit", _pad(largest, max_body_bytes + 1), "application/json"))
    nested = "[" * NESTING_DEPTH + "]" * NESTING_DEPTH
    bodies.append(HostileBody("deeply nested", f'{{"rows": {nested}}}'.encode(), "application/json"))
    valid = _dumps(one)
    bodies += [
        HostileBody("text/plain", valid, "text/plain"),
        HostileBody("form", b"rows=1", "application/x-www-form-urlencoded"),
        HostileBody("multipart", _multipart(valid), f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
        # A harmless pickle (a dict): BentoML would unpickle this content type, which must never reach it.
        HostileBody("bentoml pickle", pickle.dumps({"rows": [[1.0]]}), "application/vnd.bentoml+pickle"),
    ]
    return bodies


MULTIPART_BOUNDARY = "modelops-hostile"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _pad(body: bytes, size: int) -> bytes:
    """``body`` grown to exactly ``size`` bytes with whitespace before its closing brace (or cut when larger)."""
    if len(body) >= size:
        return body[:size]
    return body[:-1] + b" " * (size - len(body)) + body[-1:]


def _replace_numbers(value: Any, number: float) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return number
    if isinstance(value, list):
        return [_replace_numbers(v, number) for v in value]
    if isinstance(value, dict):
        return {k: _replace_numbers(v, number) for k, v in value.items()}
    return value


def _multipart(json_body: bytes) -> bytes:
    return (
        (
            f'--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name="rows"; filename="rows.json"\r\n'
            f"Content-Type: application/json\r\n\r\n"
        ).encode()
        + json_body
        + f"\r\n--{MULTIPART_BOUNDARY}--\r\n".encode()
    )
