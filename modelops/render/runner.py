"""The parent side: run the recorder (modelops/render/mocks.py) in a fresh process, write the files."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from modelops.errors import UsageError
from modelops.render.common import PROJECT_ROOT, RenderError
from modelops.render.terraform_plan import terraform_plan, terraform_type
from stacks.config import STACKS_DIR, ConfigError, load_stack_config

# ---------------------------------------------------------------------------------------------------------------
# Parent side: run the recorder in a fresh process, write the files.


def render_stack(
    stack: str,
    out_dir: Path,
    *,
    stacks_dir: Path = STACKS_DIR,
    python: str = sys.executable,
    timeout_s: float = 300,
) -> list[Path]:
    """Render ``stack`` into ``out_dir``; returns the files written. Raises ConfigError or a ModelopsError."""
    settings = load_stack_config(stack, stacks_dir)  # fails fast, naming the key and the file
    if settings.target == "local":
        raise UsageError(
            f"stack {stack!r} has target 'local', which has no Pulumi resources to render: "
            "render a kind or aws stack (modelops render --stack kind --out DIR)"
        )
    record = record_in_subprocess(stack, stacks_dir, python, timeout_s)
    return write_rendering(record, Path(out_dir))


def record_in_subprocess(stack: str, stacks_dir: Path, python: str, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="modelops-render-") as tmp:
        result_file = Path(tmp) / "record.json"
        command = [python, "-m", "modelops.render", stack, str(Path(stacks_dir).resolve()), str(result_file)]
        try:
            proc = subprocess.run(
                command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise RenderError(f"rendering stack {stack!r} took longer than {timeout_s:.0f} s") from None
        record = json.loads(result_file.read_text()) if result_file.is_file() else None
    if record and "error" in record:
        error = record["error"]
        kind = {"ConfigError": ConfigError, "UsageError": UsageError}.get(error["type"])
        if kind is None:
            where = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RenderError(
                f"the {stack!r} stack program failed under mocks: {error['type']}: {error['message']}\n{where}"
            )
        raise kind(error["message"])
    if proc.returncode != 0 or record is None:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
        raise RenderError(f"the {stack!r} stack program failed under mocks (exit {proc.returncode}):\n{tail}")
    return record


OWN_DIRS = ("kubernetes", "aws", "scripts")
OWN_FILES = ("resources.json", "outputs.json", "terraform-plan.json")


def write_rendering(record: dict, out_dir: Path) -> list[Path]:
    """Write the files; what an earlier rendering left in ``out_dir`` (and only that) is removed first, so a
    scanner never sees a stale object."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OWN_DIRS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for name in OWN_FILES:
        (out_dir / name).unlink(missing_ok=True)
    written: list[Path] = []

    def write(relative: str, text: str) -> None:
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    write("resources.json", json.dumps(record, indent=2, sort_keys=True) + "\n")
    write("outputs.json", json.dumps(record["outputs"], indent=2, sort_keys=True) + "\n")
    resources = [r for r in record["resources"] if r["custom"]]
    for index, obj in enumerate(sorted(kubernetes_objects(resources), key=_object_order)):
        meta = obj.get("metadata", {})
        name = _safe(f"{obj['kind']}-{meta.get('namespace', 'cluster')}-{meta.get('name', 'unnamed')}")
        write(f"kubernetes/{index:02d}-{name.lower()}.yaml", yaml.safe_dump(obj, sort_keys=True))
    aws_resources = [r for r in resources if r["type"].startswith("aws:")]
    for resource in aws_resources:
        tf_type = terraform_type(resource["type"])
        write(f"aws/{tf_type}.{resource['name']}.json", json.dumps(resource["inputs"], indent=2, sort_keys=True))
    if aws_resources:
        plan = terraform_plan(aws_resources, region=record["region"])
        write("terraform-plan.json", json.dumps(plan, indent=2) + "\n")
    for name, script in shell_scripts(resources).items():
        write(f"scripts/{name}.sh", script)
    return written


def _object_order(obj: dict) -> tuple:
    """Namespaces first (what `kubectl apply -f DIR` needs), then by kind, namespace and name."""
    meta = obj.get("metadata", {})
    return (obj["kind"] != "Namespace", obj["kind"], meta.get("namespace", ""), meta.get("name", ""))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def kubernetes_objects(resources: list[dict]) -> list[dict]:
    """Every Kubernetes object, as the provider would send it to the API server."""
    objects = []
    for resource in resources:
        if not resource["type"].startswith("kubernetes:"):  # the provider itself is pulumi:providers:kubernetes
            continue
        body = dict(resource["inputs"])
        head = {key: body.pop(key) for key in ("apiVersion", "kind", "metadata") if key in body}
        objects.append({**head, **body})
    return objects


def shell_scripts(resources: list[dict]) -> dict[str, str]:
    """name → script: pulumi_command scripts (create/delete) and EC2 launch templates' decoded user data."""
    scripts = {}
    for resource in resources:
        if resource["type"] == "command:local:Command":
            interpreter = resource["inputs"].get("interpreter") or ["/bin/sh", "-c"]
            for phase in ("create", "update", "delete"):
                script = resource["inputs"].get(phase)
                if script:
                    shebang = "" if script.startswith("#!") else f"#!{interpreter[0]}\n"
                    scripts[f"{resource['name']}.{phase}"] = shebang + script
        elif resource["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and resource["inputs"].get("userData"):
            scripts[f"user-data.{resource['name']}"] = base64.b64decode(resource["inputs"]["userData"]).decode()
    return scripts
