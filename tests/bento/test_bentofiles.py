"""Both bentofiles pack every module of bento/ that the services import: a module left out builds fine and fails
only when a replica starts ("No module named ...")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

BENTO = Path(__file__).resolve().parents[2] / "bento"
SERVICES = {
    "bentofile.yaml": "service.py",
    "bentofile.bench.yaml": "bench_service.py",
    "bentofile.idiomatic.yaml": "idiomatic_service.py",
}


def local_imports(module: Path, seen: set[Path] | None = None) -> set[str]:
    """The files of bento/ that ``module`` imports, directly or through another of them (module names, as the
    bento imports them: top level, bento/ is its working directory)."""
    seen = seen if seen is not None else set()
    seen.add(module)
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        # bento/served.py imports the accelerated implementations lazily: _sibling("forest"), _sibling("accelerate").
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_sibling" and node.args:
            names += [node.args[0].value] if isinstance(node.args[0], ast.Constant) else []
        for name in names:
            path = BENTO / f"{name}.py"
            if path.is_file():
                found.add(path.name)
                if path not in seen:
                    found |= local_imports(path, seen)
    return found


@pytest.mark.parametrize(("bentofile", "service"), SERVICES.items())
def test_every_module_the_service_imports_is_included(bentofile: str, service: str) -> None:
    include = set(yaml.safe_load((BENTO / bentofile).read_text())["include"])
    missing = local_imports(BENTO / service) - include
    assert not missing, f"bento/{bentofile} lacks {sorted(missing)} in include: (bento/{service} imports them)"
