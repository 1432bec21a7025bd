"""One set of Kafka client options from the settings: bootstrap, security protocol, SASL and TLS.

`kafka_client_options(settings, client)` is the only place that reads `broker`,
`kafka_security_protocol`, `kafka_sasl_*` and `kafka_ssl_cafile`; the Faust app, the control
readers, the publishing commands, `queue tail` and the tools all build their clients from it, so a
deployment that works for one works for all of them.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal, get_args

from pipeline.errors import SettingsError
from pipeline.settings import Settings

__all__ = ["PROTOCOLS", "ClientKind", "bootstrap_of", "kafka_client_options"]

#: Which library the options are for.
ClientKind = Literal["faust", "aiokafka", "kafka-python"]
#: Security protocols Kafka knows.
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def bootstrap_of(settings: Settings) -> str:
    """host:port list of a kafka:// broker URL; refuses memory:// (nothing outside the process can reach it)."""
    if not settings.broker.startswith("kafka://"):
        raise SettingsError(
            f"broker was {settings.broker!r}: this needs a kafka:// broker (EPIFLOW_BROKER or --broker); "
            "the embedded memory:// broker lives inside one worker process"
        )
    return settings.broker.removeprefix("kafka://").replace(";", ",")


def _protocol(settings: Settings) -> str:
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(
            f"kafka_security_protocol was {settings.kafka_security_protocol!r} but is expected to be one of {', '.join(PROTOCOLS)}"
        )
    return protocol


def _sasl(settings: Settings) -> tuple[str, str, str]:
    mechanism = (settings.kafka_sasl_mechanism or "PLAIN").upper()
    if mechanism not in _SASL_MECHANISMS:
        raise SettingsError(
            f"kafka_sasl_mechanism was {settings.kafka_sasl_mechanism!r} but is expected to be one of {', '.join(_SASL_MECHANISMS)}"
        )
    if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
        raise SettingsError(
            f"kafka_security_protocol {settings.kafka_security_protocol!r} needs kafka_sasl_username and "
            "kafka_sasl_password (EPIFLOW_KAFKA_SASL_USERNAME, EPIFLOW_KAFKA_SASL_PASSWORD)"
        )
    return mechanism, settings.kafka_sasl_username, settings.kafka_sasl_password


def _cafile(settings: Settings) -> str | None:
    if settings.kafka_ssl_cafile is None:
        return None
    path = settings.path(settings.kafka_ssl_cafile)
    if not path.is_file():
        raise SettingsError(f"kafka_ssl_cafile was {str(settings.kafka_ssl_cafile)!r}: no such file")
    return str(path)


def kafka_client_options(settings: Settings, client: ClientKind) -> dict[str, Any]:
    """Keyword arguments that connect a `client` to the settings' broker with the settings' security.

    - ``"kafka-python"``: for `KafkaProducer`, `KafkaConsumer`, `KafkaAdminClient`
      (`bootstrap_servers`, `security_protocol`, `ssl_cafile`, `sasl_*`).
    - ``"aiokafka"``: for `AIOKafkaProducer`, `AIOKafkaConsumer`, `AIOKafkaAdminClient`
      (the same, with the CA in an `ssl_context`).
    - ``"faust"``: for `faust.App` (`broker`, `broker_credentials`); memory:// has no credentials.

    TLS verifies the broker's certificate and host name against `kafka_ssl_cafile`, or the
    system's CAs when none is given.
    """
    if client not in get_args(ClientKind):
        raise ValueError(f"client was {client!r} but is expected to be one of {', '.join(get_args(ClientKind))}")
    if client == "faust" and not settings.broker.startswith("kafka://"):
        return {"broker": settings.broker, "broker_credentials": None}
    bootstrap = bootstrap_of(settings)
    protocol = _protocol(settings)
    tls = protocol in ("SSL", "SASL_SSL")
    sasl = _sasl(settings) if protocol.startswith("SASL") else None
    cafile = _cafile(settings) if tls else None
    context = ssl.create_default_context(cafile=cafile) if tls else None
    if client == "faust":
        return {"broker": settings.broker, "broker_credentials": _faust_credentials(protocol, sasl, context)}
    options: dict[str, Any] = {"bootstrap_servers": bootstrap.split(",") if client == "kafka-python" else bootstrap,
                               "security_protocol": protocol}
    if sasl is not None:
        options.update(sasl_mechanism=sasl[0], sasl_plain_username=sasl[1], sasl_plain_password=sasl[2])
    if tls and client == "kafka-python":
        options.update(ssl_check_hostname=True, ssl_cafile=cafile)
    elif tls:
        options["ssl_context"] = context
    return options


def _faust_credentials(protocol: str, sasl: tuple[str, str, str] | None, context: ssl.SSLContext | None) -> Any:
    """Faust's credentials object for the protocol (None for PLAINTEXT)."""
    from faust.auth import SASLCredentials, SSLCredentials

    if sasl is not None:
        if protocol == "SASL_PLAINTEXT":
            context = None
        return SASLCredentials(mechanism=sasl[0], username=sasl[1], password=sasl[2], ssl_context=context)
    if context is not None:
        return SSLCredentials(context)
    return None
