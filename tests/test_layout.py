"""The shape of the code, checked: components/ is a library free of Prefect, the stages do not
import each other in a circle, and the settings of a cell are resolved in one place."""
import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

COMPONENTS = sorted((ROOT / "components").rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", COMPONENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_components_never_import_prefect_or_flows(path):
    bad = {m for m in imports(path) if m.split(".")[0] in ("prefect", "flows")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: orchestration belongs in flows/"


def test_the_stage_modules_import_no_circle():
    stages = {module(p): p for p in (ROOT / "components" / "stages").glob("*.py") if p.name != "__init__.py"}
    graph = {name: {m for m in imports(p) if m in stages} for name, p in stages.items()}

    def reach(start, seen):
        for nxt in graph[start]:
            if nxt not in seen:
                seen.add(nxt)
                reach(nxt, seen)
        return seen

    for name in graph:
        assert name not in reach(name, set()), f"{name} imports itself through {sorted(graph[name])}"
    assert "components.stages.tune" not in graph["components.stages.evaluate"]


def test_config_hashes_are_computed_only_by_the_resolver():
    """One resolution: no module but components/spec.py hashes settings or applies tuned values."""
    for path in COMPONENTS + sorted((ROOT / "flows").glob("*.py")):
        if path.name in ("spec.py", "tuning.py"):
            continue
        text = path.read_text()
        assert "tuning.apply(" not in text, f"{path.relative_to(ROOT)} applies tuned values itself"
        assert "hashlib.sha256(json.dumps(" not in text or path.name == "common.py", \
            f"{path.relative_to(ROOT)} hashes settings itself"


def test_resolving_and_skipping_a_cell_do_not_import_torch():
    """DVC starts a process per stage: a skipped cell's record costs no torch import (seconds)."""
    import subprocess
    import sys

    code = ("import sys; import components.spec, components.stages.skip, components.cli; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "False"
