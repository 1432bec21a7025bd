"""Settings: `config/settings.toml`, overridden by `EPIFLOW_*` environment variables, overridden by CLI flags.

A relative path in a settings file is relative to that file (so `rules = "rules.yaml"` beside it works from
any working directory); relative paths from the environment, flags or the defaults are relative to the
repository root.

Refuses, with the source and key named, anything that does not validate — including the demo
secret on a real Kafka broker unless the operator says `--insecure-demo-secret`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import SettingsError

__all__ = ["DEMO_SECRET", "REPO_ROOT", "Settings", "load_settings"]

#: Root of a source checkout; relative paths in settings resolve against it.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_FILE = REPO_ROOT / "config" / "settings.toml"
DEMO_SECRET = "epiflow-demo-secret-not-for-production"


class Settings(BaseModel):
    """Everything a worker, a CLI command or a test needs to know about its deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    broker: str = "memory://"
    store: str = "memory://"
    topic_prefix: str = Field(default="epiflow", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=4, ge=1, le=1024)
    replication: int = Field(default=1, ge=1, le=10)
    secret: str = Field(default=DEMO_SECRET, min_length=16)
    insecure_demo_secret: bool = False
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=0, le=65535)
    display_tz: str = "Asia/Shanghai"
    rules: Path = Path("config/rules.yaml")
    key_groups: Path = Path("config/key_groups.yaml")
    regions: Path = Path("config/geo/risk_regions.geojson")
    communities: Path = Path("config/geo/district.geojson")
    checkpoints: Path = Path("config/geo/checkpoints.geojson")
    accept_unknown_checkpoints: bool = False
    access: Path = Path("config/access.toml")
    map_levels: Path = Path("config/map_levels.yaml")
    data_dir: Path = Path(".cache/epiflow-data")
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None

    @field_validator("broker")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        if not value.startswith(("memory://", "kafka://")):
            raise ValueError(f"broker was {value!r} but is expected to start with 'memory://' or 'kafka://'")
        return value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if not value.startswith(("memory://", "rocksdb://")):
            raise ValueError(f"store was {value!r} but is expected to be 'memory://' or 'rocksdb://'")
        return value

    @field_validator("display_tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"display_tz was {value!r} but is expected to be an IANA zone such as 'Asia/Shanghai'") from None
        return value

    @model_validator(mode="after")
    def _no_demo_secret_on_kafka(self) -> Settings:
        if self.broker.startswith("kafka://") and self.secret == DEMO_SECRET and not self.insecure_demo_secret:
            raise ValueError(
                "the demo secret is refused on kafka://: set EPIFLOW_SECRET (or 'secret' in settings.toml), "
                "or pass --insecure-demo-secret for a throwaway test deployment"
            )
        return self

    @property
    def secret_bytes(self) -> bytes:
        return self.secret.encode("utf-8")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_tz)

    def path(self, value: Path) -> Path:
        """A settings path made absolute against the repository root."""
        return value if value.is_absolute() else REPO_ROOT / value

    def topic(self, name: str) -> str:
        """Full topic name for a short name, e.g. `declarations` → `epiflow.declarations`."""
        return f"{self.topic_prefix}.{name}"


_ENV_PREFIX = "EPIFLOW_"
_PATH_KEYS = frozenset(
    name for name, f in Settings.model_fields.items() if f.annotation is Path or Path in get_args(f.annotation)
)


def _relative_to(values: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Path settings from a file, made absolute against the file's folder."""
    out = dict(values)
    for key in _PATH_KEYS & out.keys():
        if isinstance(out[key], str) and out[key] and not Path(out[key]).is_absolute():
            out[key] = str(folder / out[key])
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    fields = Settings.model_fields
    found: dict[str, Any] = {}
    for key, value in env.items():
        if key.startswith(_ENV_PREFIX) and key[len(_ENV_PREFIX):].lower() in fields:
            found[key[len(_ENV_PREFIX):].lower()] = value
    return found


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Merge file, environment and explicit overrides (None values are ignored) into validated settings."""
    env = os.environ if env is None else env
    source = Path(path or env.get("EPIFLOW_SETTINGS") or DEFAULT_SETTINGS_FILE)
    merged: dict[str, Any] = {}
    if source.exists():
        try:
            merged.update(_relative_to(tomllib.loads(source.read_text(encoding="utf-8")), source.resolve().parent))
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{source}: not valid TOML: {exc}") from None
    elif path is not None:
        raise SettingsError(f"{source}: settings file not found")
    merged.update(_from_env(env))
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise SettingsError(f"{source} (+ EPIFLOW_* environment, flags): {problems}") from None
