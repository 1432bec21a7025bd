"""Settings files: a relative path in a settings file is relative to that file, wherever the command runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import REPO_ROOT, load_settings


def test_paths_in_a_settings_file_are_relative_to_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "settings.toml").write_text('rules = "rules/active.yaml"\nregions = "/abs/regions.geojson"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(folder / "settings.toml", env={})
    assert settings.path(settings.rules) == folder.resolve() / "rules" / "active.yaml"
    assert settings.path(settings.regions) == Path("/abs/regions.geojson")
    assert settings.path(settings.communities) == REPO_ROOT / "config" / "geo" / "district.geojson"


def test_the_default_settings_name_the_repository_files_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={})
    for name in ("rules", "regions", "communities", "checkpoints"):
        assert settings.path(getattr(settings, name)).is_file(), name
    assert settings.path(settings.access) == REPO_ROOT / "config" / "access.toml"
    assert settings.accept_unknown_checkpoints is False


def test_environment_paths_stay_relative_to_the_repository() -> None:
    settings = load_settings(env={"EPIFLOW_RULES": "config/rules.yaml"})
    assert settings.path(settings.rules) == REPO_ROOT / "config" / "rules.yaml"
