"""Whether one bento takes the requests another one's clients send: their endpoints' OpenAPI request schemas compared.

Every bento carries the OpenAPI document of its service (``apis/openapi.yaml``, written by `bentoml build`), so two
versions compare without starting either. What is compared is what a request must be: for every endpoint of the
live version, the JSON schema of its request body with references resolved and the words a human reads (titles,
descriptions, examples) left out — a model whose feature *names* changed but whose rows still hold the same count of
finite numbers takes the same requests; one that wants 10 numbers where the live one takes 13 does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modelops.bentos import describe
from modelops.errors import DeploymentError

OPENAPI_FILE = Path("apis") / "openapi.yaml"
# Keys that document a schema without constraining a request.
PROSE = frozenset({"title", "description", "examples", "example", "$comment"})
# Endpoints every BentoML service has: health, metrics and docs are not what clients send predictions to.
INFRASTRUCTURE = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json"})


def openapi_of(bento: str) -> dict[str, Any]:
    """The bento's own OpenAPI document."""
    path = describe(bento).path / OPENAPI_FILE
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DeploymentError(f"cannot read the OpenAPI document of {bento} ({path}): {exc}") from None
    if not isinstance(document, dict):
        raise DeploymentError(f"the OpenAPI document of {bento} ({path}) is not a mapping")
    return document


def _resolve(node: Any, document: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """``node`` with every local $ref replaced by what it points to and prose keys removed."""
    if isinstance(node, list):
        return [_resolve(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        if ref in seen:  # a recursive schema: compare it by name from here on
            return {"$ref": ref.rsplit("/", 1)[-1]}
        target: Any = document
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **rest}, document, (*seen, ref))
    return {k: _resolve(v, document, seen) for k, v in node.items() if k not in PROSE}


def request_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """{"METHOD /path": resolved request schema} of every client endpoint that takes a body."""
    found: dict[str, Any] = {}
    for path, operations in (document.get("paths") or {}).items():
        if path in INFRASTRUCTURE or not isinstance(operations, dict):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or method.lower() not in ("post", "put", "patch"):
                continue
            body = operation.get("requestBody") or {}
            content = body.get("content") or {}
            schemas = {media: _resolve(spec.get("schema", {}), document) for media, spec in content.items()}
            found[f"{method.upper()} {path}"] = schemas
    return found


def _walk(live: Any, other: Any, where: str, out: list[str]) -> None:
    if isinstance(live, dict) and isinstance(other, dict):
        for key in sorted(set(live) | set(other)):
            here = f"{where}.{key}" if where else key
            if key not in other:
                out.append(f"{here}: {_short(live[key])} in the live version, absent in the other")
            elif key not in live:
                out.append(f"{here}: absent in the live version, {_short(other[key])} in the other")
            else:
                _walk(live[key], other[key], here, out)
    elif live != other:
        out.append(f"{where}: {_short(live)} in the live version, {_short(other)} in the other")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare(live: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Why ``other``'s API would refuse or misread requests made for ``live``'s (empty: it takes them all)."""
    differences: list[str] = []
    for endpoint, schema in request_schemas(live).items():
        theirs = request_schemas(other).get(endpoint)
        if theirs is None:
            differences.append(f"{endpoint}: the live version has this endpoint, the other does not")
            continue
        _walk(schema, theirs, endpoint, differences)
    return differences


def request_schema_differences(live_bento: str, other_bento: str) -> list[str]:
    """:func:`compare` of the two bentos' own OpenAPI documents."""
    return compare(openapi_of(live_bento), openapi_of(other_bento))
