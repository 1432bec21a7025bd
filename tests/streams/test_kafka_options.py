"""One set of Kafka client options: Faust, aiokafka and kafka-python get the same security from the settings."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from pipeline.errors import SettingsError
from pipeline.settings import Settings
from streams.app import build_app
from streams.kafka_options import PROTOCOLS, kafka_client_options

# A throwaway self-signed CA certificate (public part only), enough to load into an SSL context.
_CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBZzCCAQ6gAwIBAgIIZAgMPtdfSKQwCgYIKoZIzj0EAwIwHzEdMBsGA1UEAxMU
ZXBpZmxvdyB1bml0LXRlc3QgQ0EwIBcNMjYxMjAxMjAwMjAzWhgPMjEyNjExMDcy
MDAyMDNaMB8xHTAbBgNVBAMTFGVwaWZsb3cgdW5pdC10ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEt7A9WKbC0iUgkFwx0l+1cDZtRTw5hStpva5/4jFc
C5ToH8DiuEZ8WrCW9OBsNm4MT9I9jsCSU3TV7SFRHAEY0KMyMDAwHQYDVR0OBBYE
FC3EilZFeEDtfBCp5ORbsk+W3U3wMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0E
AwIDRwAwRAIgDPb3LFv85TIOuwZ7UQk8ehuW85dhB8ZhFmiKwpBK9CECIDyCTC5R
/2wATdVTf2wuwt8Pqj2Z+V+E2WDZgLF9/tni
-----END CERTIFICATE-----
"""
_CA_NAME = "epiflow unit-test CA"


def _settings(tmp_path: Path, protocol: str, **extra: Any) -> Settings:
    cafile = tmp_path / "ca.pem"
    cafile.write_text(_CA_PEM)
    sasl = dict(kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="worker-a", kafka_sasl_password="pw-a")
    return Settings(broker="kafka://10.0.0.1:9093;10.0.0.2:9093", insecure_demo_secret=True,
                    kafka_security_protocol=protocol, kafka_ssl_cafile=cafile,
                    **(sasl if protocol.startswith("SASL") else {}), **extra)


def _context_ca(context: ssl.SSLContext | None) -> str | None:
    """The CA an SSL context trusts (its common name), having checked it verifies certificate and host."""
    if context is None:
        return None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    names = [dict(part[0] for part in ca["subject"]).get("commonName") for ca in context.get_ca_certs()]
    return _CA_NAME if _CA_NAME in names else repr(names)


def _kafka_python_view(options: dict[str, Any]) -> tuple[Any, ...]:
    cafile = options.get("ssl_cafile")
    ca = _context_ca(ssl.create_default_context(cafile=cafile)) if cafile else None
    return (options["security_protocol"], options.get("sasl_mechanism"), options.get("sasl_plain_username"),
            options.get("sasl_plain_password"), ca)


def _aiokafka_view(options: dict[str, Any]) -> tuple[Any, ...]:
    return (options.get("security_protocol", "PLAINTEXT"), options.get("sasl_mechanism"),
            options.get("sasl_plain_username"), options.get("sasl_plain_password"), _context_ca(options.get("ssl_context")))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_client_gets_the_same_security(tmp_path: Path, protocol: str) -> None:
    settings = _settings(tmp_path, protocol)
    kafka_python = kafka_client_options(settings, "kafka-python")
    aiokafka = kafka_client_options(settings, "aiokafka")
    faust_options = kafka_client_options(settings, "faust")

    assert kafka_python["bootstrap_servers"] == ["10.0.0.1:9093", "10.0.0.2:9093"]
    assert aiokafka["bootstrap_servers"] == "10.0.0.1:9093,10.0.0.2:9093"
    assert faust_options["broker"] == "kafka://10.0.0.1:9093;10.0.0.2:9093"
    faust_view = _aiokafka_view(dict(credentials_to_aiokafka_auth(faust_options["broker_credentials"])))
    expected = (protocol, "SCRAM-SHA-512" if protocol.startswith("SASL") else None,
                "worker-a" if protocol.startswith("SASL") else None, "pw-a" if protocol.startswith("SASL") else None,
                _CA_NAME if protocol.endswith("SSL") else None)
    assert _kafka_python_view(kafka_python) == _aiokafka_view(aiokafka) == faust_view == expected


def test_the_app_is_built_with_those_credentials(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "SASL_SSL")
    app = build_app(settings, web_enabled=False)
    auth = dict(credentials_to_aiokafka_auth(app.conf.broker_credentials))
    assert _aiokafka_view(auth) == _aiokafka_view(kafka_client_options(settings, "aiokafka"))


def test_memory_broker_has_no_credentials(tmp_path: Path) -> None:
    settings = Settings(broker="memory://", kafka_security_protocol="SASL_SSL")
    assert kafka_client_options(settings, "faust") == {"broker": "memory://", "broker_credentials": None}
    with pytest.raises(SettingsError, match="needs a kafka:// broker"):
        kafka_client_options(settings, "kafka-python")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol was 'TLS' but is expected to be one of"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism was 'GSSAPI'"),
        ({"kafka_sasl_password": None}, "needs kafka_sasl_username and kafka_sasl_password"),
        ({"kafka_ssl_cafile": Path("/nonexistent/ca.pem")}, "kafka_ssl_cafile was '/nonexistent/ca.pem': no such file"),
    ],
)
def test_bad_security_settings_are_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    settings = _settings(tmp_path, "SASL_SSL").model_copy(update=change)
    for client in ("kafka-python", "aiokafka", "faust"):
        with pytest.raises(SettingsError, match=message):
            kafka_client_options(settings, client)


def test_unknown_client_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="client was 'confluent'"):
        kafka_client_options(_settings(tmp_path, "PLAINTEXT"), "confluent")  # type: ignore[arg-type]
