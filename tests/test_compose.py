"""docker-compose.yml is well-formed: `docker compose config -q` where a compose client exists, YAML shape always."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_has_the_services_a_deployment_needs() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert {"kafka", "init", "worker", "simulator"} <= set(doc["services"])
    assert doc["services"]["kafka"]["image"].startswith("apache/kafka:")
    assert doc["services"]["simulator"]["profiles"] == ["sim"]
    assert "build" in doc["services"]["worker"] and "ports" not in doc["services"]["worker"], "scalable: no fixed host port"


def _compose_command() -> list[str] | None:
    """`docker compose` (v2 plugin) or `docker-compose` (the standalone client), whichever is installed."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose client on this machine")
def test_docker_compose_config_is_valid() -> None:
    result = subprocess.run(
        [*(_compose_command() or []), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, env={"EPIFLOW_SECRET": "x" * 32, "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stderr
