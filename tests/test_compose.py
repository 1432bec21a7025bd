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


def _compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _compose_available(), reason="no docker compose client on this machine")
def test_docker_compose_config_is_valid() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, env={"EPIFLOW_SECRET": "x" * 32, "PATH": "/usr/bin:/bin:/usr/local/bin"},
    )
    assert result.returncode == 0, result.stderr
