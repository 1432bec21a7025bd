"""pipeline/ imports no broker library; geo/ imports no pipeline code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.settings import REPO_ROOT

FORBIDDEN = {"pipeline": ("faust", "aiokafka", "kafka", "streams"), "geo": ("faust", "aiokafka", "kafka", "streams", "pipeline")}


@pytest.mark.parametrize("package", ["pipeline"])
def test_no_upward_or_broker_imports(package: str):
    bad = []
    for path in sorted(Path(REPO_ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN[package]]
    assert bad == []
