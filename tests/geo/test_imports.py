"""geo/ imports no broker library and nothing from the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GEO = Path(__file__).resolve().parents[2] / "geo"
FORBIDDEN = ("faust", "kafka", "aiokafka", "mode", "pipeline", "streams")


@pytest.mark.parametrize("path", sorted(GEO.glob("*.py")), ids=lambda p: p.name)
def test_no_forbidden_imports(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    bad = [n for n in names if n.split(".")[0] in FORBIDDEN]
    assert bad == [], f"{path.name} imports {bad}"
