"""Kafka client options for the tools, from a bootstrap address plus the security in the settings.

The tools are handed a bare ``host:port``; everything else (security protocol, SASL, CA file) comes
from `config/settings.toml` and ``EPIFLOW_KAFKA_*`` through `streams.kafka_options`, as for the worker.
"""

from __future__ import annotations

from typing import Any

from pipeline.settings import load_settings
from streams.kafka_options import ClientKind, kafka_client_options

__all__ = ["client_options"]


def client_options(bootstrap: str, client: ClientKind) -> dict[str, Any]:
    """`kafka_client_options` for the broker at `bootstrap` (``host:port[,host:port]``)."""
    settings = load_settings(broker=f"kafka://{bootstrap}", insecure_demo_secret=True)
    return kafka_client_options(settings, client)
