"""A single-node Apache Kafka broker (KRaft, broker+controller) assembled from Maven Central jars.

Tests, benchmarks and failure drills call `ensure_broker()` / `stop_broker()` / `broker_running()`;
the Makefile and CI call ``python -m tools.kafka_broker fetch|up|down|restart|status``.
With ``--secure`` the same commands run a second, secured broker (SASL_SSL with SCRAM-SHA-512, a
keytool-made CA and certificate, ACLs with nothing allowed by default, a super-user) on its own ports
and data, sharing the jars; the plaintext broker is untouched by it.
Jars, data, logs and the PID file live in a git-ignored cache (``.cache/kafka/`` or
``$EPIFLOW_KAFKA_CACHE``); every step that changes the broker holds a file lock, so several
processes sharing one checkout start at most one broker.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BrokerError",
    "BrokerSettings",
    "BrokerStartError",
    "FetchError",
    "PortInUseError",
    "broker_running",
    "broker_settings",
    "ensure_broker",
    "fetch_jars",
    "kafka_version",
    "log_tail",
    "restart_broker",
    "secure_broker_settings",
    "shared_broker",
    "stop_broker",
    "super_user_env",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.properties"
SERVER_TEMPLATE = KAFKA_DIR / "server.properties.template"
SECURE_TEMPLATE = KAFKA_DIR / "server-secure.properties.template"

HOST = "127.0.0.1"
DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
DEFAULT_SECURE_PORT = 19094
DEFAULT_SECURE_CONTROLLER_PORT = 19095
#: The secured broker's administrator: a super-user, created with the storage (SCRAM) before the first start.
SUPER_USER = "admin"
SCRAM_MECHANISM = "SCRAM-SHA-512"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
JVM_FLAGS = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-Djava.awt.headless=true",
    "-Dlog4j2.shutdownHookEnabled=false",
)
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MAIN_CLASS = "kafka.Kafka"
# Brokers this process started, kept so they are reaped (not left as zombies) when stopped here.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class BrokerError(RuntimeError):
    """Base class for everything that can go wrong fetching, starting or stopping the broker."""


class FetchError(BrokerError):
    """Maven could not assemble the broker's classpath."""


class BrokerStartError(BrokerError):
    """The broker process did not come up healthy."""


class PortInUseError(BrokerError):
    """Something that is not this broker already listens on the configured port."""


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker keeps its files and which ports it listens on.

    A ``secure`` broker serves SASL_SSL (SCRAM-SHA-512) only, with ACLs enforced; its CA
    certificate, keystores and super-user credentials live in ``<cache>/tls``.
    """

    cache_dir: Path
    port: int
    controller_port: int
    secure: bool = False

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / "lib"

    @property
    def fetch_marker(self) -> Path:
        return self.lib_dir / ".fetched"

    @property
    def data_dir(self) -> Path:
        return self.cache_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.cache_dir / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.cache_dir / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.cache_dir / "server.properties"

    @property
    def lock_file(self) -> Path:
        return self.cache_dir / "broker.lock"

    @property
    def leases_dir(self) -> Path:
        return self.cache_dir / "leases"

    @property
    def started_by_lease_file(self) -> Path:
        return self.cache_dir / "started-by-lease"

    @property
    def tls_dir(self) -> Path:
        return self.cache_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """PEM certificate of the CA that signed the secured broker's certificate (give it to clients)."""
        return self.tls_dir / "ca.pem"

    @property
    def keystore_file(self) -> Path:
        return self.tls_dir / "broker.p12"

    @property
    def truststore_file(self) -> Path:
        return self.tls_dir / "truststore.p12"

    @property
    def secrets_file(self) -> Path:
        return self.tls_dir / "secrets.json"

    @property
    def admin_env_file(self) -> Path:
        """``EPIFLOW_*`` lines that connect epiflow to the secured broker as the super-user."""
        return self.cache_dir / "admin.env"


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise BrokerError(f"{name}={raw!r} is not a port number; expected an integer 1..65535") from None
    if not 0 < port < 65536:
        raise BrokerError(f"{name}={raw!r} is out of range; expected 1..65535")
    return port


def broker_settings() -> BrokerSettings:
    """Settings from ``EPIFLOW_KAFKA_CACHE``, ``EPIFLOW_KAFKA_PORT``, ``EPIFLOW_KAFKA_CONTROLLER_PORT``."""
    cache = os.environ.get("EPIFLOW_KAFKA_CACHE") or str(REPO_ROOT / ".cache" / "kafka")
    port = _env_port("EPIFLOW_KAFKA_PORT", DEFAULT_PORT)
    controller_port = _env_port("EPIFLOW_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)
    if port == controller_port:
        raise BrokerError(
            f"broker and controller ports are both {port}; set EPIFLOW_KAFKA_CONTROLLER_PORT apart"
        )
    return BrokerSettings(cache_dir=Path(cache).resolve(), port=port, controller_port=controller_port)


def secure_broker_settings() -> BrokerSettings:
    """The secured broker: ``EPIFLOW_KAFKA_SECURE_CACHE`` (default ``<kafka cache>/secure``), ports
    ``EPIFLOW_KAFKA_SECURE_PORT`` (19094) and ``EPIFLOW_KAFKA_SECURE_CONTROLLER_PORT`` (19095).
    It is a broker of its own, beside the plaintext one, and links to the plaintext broker's jars."""
    plain = broker_settings()
    cache = Path(os.environ.get("EPIFLOW_KAFKA_SECURE_CACHE") or plain.cache_dir / "secure").resolve()
    port = _env_port("EPIFLOW_KAFKA_SECURE_PORT", DEFAULT_SECURE_PORT)
    controller_port = _env_port("EPIFLOW_KAFKA_SECURE_CONTROLLER_PORT", DEFAULT_SECURE_CONTROLLER_PORT)
    if port == controller_port or {port, controller_port} & {plain.port, plain.controller_port}:
        raise BrokerError(
            f"secured broker ports {port}/{controller_port} collide with each other or with the plaintext broker's "
            f"{plain.port}/{plain.controller_port}; set EPIFLOW_KAFKA_SECURE_PORT / EPIFLOW_KAFKA_SECURE_CONTROLLER_PORT"
        )
    return BrokerSettings(cache_dir=cache, port=port, controller_port=controller_port, secure=True)


def kafka_version() -> str:
    """The Apache Kafka version pinned in ``tools/kafka/pom.xml``."""
    return _pom_property("kafka.version")


def _pom_property(name: str) -> str:
    root = ET.parse(POM).getroot()
    node = root.find(f"m:properties/m:{name}", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise FetchError(f"{POM} has no <{name}> property")
    return node.text.strip()


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def _locked(settings: BrokerSettings) -> Iterator[None]:
    """Serialise fetch/start/stop across processes sharing the cache dir."""
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- fetch


def _jars_complete(settings: BrokerSettings) -> bool:
    marker = settings.fetch_marker
    if not marker.is_file() or marker.read_text().strip() != _pom_digest():
        return False
    return (settings.lib_dir / f"kafka_2.13-{kafka_version()}.jar").is_file()


def _fetch_unlocked(settings: BrokerSettings) -> Path:
    if _jars_complete(settings):
        return settings.lib_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError("`mvn` is not on PATH; install Maven 3 (and Java 17+) to fetch the Kafka jars")
    staging = settings.cache_dir / "lib.partial"
    shutil.rmtree(staging, ignore_errors=True)
    command = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    log.info("fetching Apache Kafka %s jars from Maven Central into %s", kafka_version(), settings.lib_dir)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise FetchError(f"mvn exited with {result.returncode}:\n" + "\n".join(output))
    if not (staging / f"kafka_2.13-{kafka_version()}.jar").is_file():
        raise FetchError(f"mvn succeeded but {staging} holds no kafka_2.13-{kafka_version()}.jar")
    shutil.rmtree(settings.lib_dir, ignore_errors=True)
    staging.rename(settings.lib_dir)
    settings.fetch_marker.write_text(_pom_digest() + "\n")
    log.info(
        "fetched %d jars in %.1f s", len(list(settings.lib_dir.glob("*.jar"))), time.monotonic() - started
    )
    return settings.lib_dir


def fetch_jars(settings: BrokerSettings | None = None) -> Path:
    """Copy the broker's jars into the cache unless a complete copy for this pom is there."""
    settings = settings or broker_settings()
    with _locked(settings):
        return _fetch_unlocked(settings)


# --------------------------------------------------------------------------- process state


def _read_pid(settings: BrokerSettings) -> int | None:
    try:
        return int(settings.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our own child, so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _is_our_broker(pid: int, settings: BrokerSettings) -> bool:
    """True if ``pid`` is alive and is a Kafka broker started with this cache's config file."""
    _reap(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    args = [part.decode(errors="replace") for part in cmdline]
    return _MAIN_CLASS in args and str(settings.config_file) in args


def _live_pid(settings: BrokerSettings) -> int | None:
    pid = _read_pid(settings)
    return pid if pid is not None and _is_our_broker(pid, settings) else None


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_port_closed(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _port_open(port):
            return True
        time.sleep(0.2)
    return not _port_open(port)


def _metadata_ok(bootstrap: str, timeout_ms: int = 5000, settings: BrokerSettings | None = None) -> bool:
    """True if kafka-python can bootstrap and fetch cluster metadata from ``bootstrap``
    (as the super-user when ``settings`` is a secured broker's)."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        options = _client_options(settings) if settings is not None and settings.secure else {"bootstrap_servers": bootstrap}
        consumer = KafkaConsumer(
            **options,
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
            client_id="epiflow-broker-probe",
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        consumer.topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        consumer.close()


def broker_running(settings: BrokerSettings | None = None) -> bool:
    """True if this cache's broker process is alive and answers a metadata request."""
    settings = settings or broker_settings()
    return _live_pid(settings) is not None and _metadata_ok(settings.bootstrap, settings=settings)


def log_tail(lines: int = 40, settings: BrokerSettings | None = None) -> str:
    """The last ``lines`` lines of the broker's log, for error messages."""
    settings = settings or broker_settings()
    try:
        with open(settings.log_file, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return f"(no broker log at {settings.log_file})"


# --------------------------------------------------------------------------- start


def _random_cluster_id() -> str:
    """A Kafka ``Uuid`` in its base64url form, as ``kafka-storage.sh random-uuid`` prints it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerStartError("`java` is not on PATH; Kafka 4.x needs Java 17+")
    return java


def _java_command(
    settings: BrokerSettings, main: str, *args: str, heap: tuple[str, ...] = JVM_FLAGS
) -> list[str]:
    return [
        _java(),
        *heap,
        f"-Dkafka.logs.dir={settings.logs_dir}",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{settings.lib_dir}/*",
        main,
        *args,
    ]


def _write_config(settings: BrokerSettings) -> None:
    values = {"port": settings.port, "controller_port": settings.controller_port, "data_dir": str(settings.data_dir)}
    text = string.Template(SERVER_TEMPLATE.read_text()).substitute(values)
    if settings.secure:
        stored = _secrets(settings)
        text += string.Template(SECURE_TEMPLATE.read_text()).substitute(
            values, ca_file=settings.ca_file, keystore=settings.keystore_file, truststore=settings.truststore_file,
            store_password=stored["store_password"], super_user=SUPER_USER, super_password=stored["super_password"],
        )
    settings.config_file.touch(mode=0o600)
    settings.config_file.write_text(text)


# --------------------------------------------------------------------------- secured broker


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


def _secrets(settings: BrokerSettings) -> dict[str, str]:
    """The secured broker's keystore and super-user passwords, made once per cache and kept."""
    try:
        return json.loads(settings.secrets_file.read_text())
    except (FileNotFoundError, ValueError):
        stored = {"store_password": secrets.token_urlsafe(18), "super_password": secrets.token_urlsafe(18)}
        _write_private(settings.secrets_file, json.dumps(stored))
        return stored


def _keytool() -> str:
    """The JDK's keytool, beside the `java` that runs the broker."""
    beside = Path(os.path.realpath(_java())).parent / "keytool"
    found = str(beside) if beside.is_file() else shutil.which("keytool")
    if found is None:
        raise BrokerStartError("`keytool` (part of the Java runtime) was not found beside java or on PATH")
    return found


def _run_keytool(*args: str) -> None:
    result = subprocess.run([_keytool(), *args, "-noprompt"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        command = args[0] if args else ""
        raise BrokerStartError(f"keytool {command} failed (exit {result.returncode}): {(result.stdout + result.stderr).strip()}")


def _ensure_tls(settings: BrokerSettings) -> None:
    """A self-signed CA and a broker certificate for 127.0.0.1 signed by it, unless they are there."""
    if settings.ca_file.is_file() and settings.keystore_file.is_file() and settings.truststore_file.is_file():
        return
    tls = settings.tls_dir
    tls.mkdir(parents=True, exist_ok=True)
    password = _secrets(settings)["store_password"]
    ca_store, request, signed = tls / "ca.p12", tls / "broker.csr", tls / "broker.pem"
    for path in (ca_store, settings.keystore_file, settings.truststore_file, settings.ca_file, request, signed):
        path.unlink(missing_ok=True)
    store = ("-storetype", "PKCS12", "-storepass", password)
    key = ("-keyalg", "EC", "-groupname", "secp256r1", "-validity", "3650")
    san = "SAN=ip:127.0.0.1,dns:localhost"
    _run_keytool("-genkeypair", "-alias", "ca", "-dname", "CN=epiflow test CA", *key, "-ext", "bc:c",
                 "-keystore", str(ca_store), *store)
    _run_keytool("-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *store, "-file", str(settings.ca_file))
    _run_keytool("-genkeypair", "-alias", "broker", "-dname", "CN=127.0.0.1", *key, "-ext", san,
                 "-keystore", str(settings.keystore_file), *store)
    _run_keytool("-certreq", "-alias", "broker", "-keystore", str(settings.keystore_file), *store, "-file", str(request))
    _run_keytool("-gencert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *store, "-infile", str(request),
                 "-outfile", str(signed), "-validity", "3650", "-ext", san)
    _run_keytool("-importcert", "-alias", "ca", "-file", str(settings.ca_file), "-keystore", str(settings.keystore_file), *store)
    _run_keytool("-importcert", "-alias", "broker", "-file", str(signed), "-keystore", str(settings.keystore_file), *store)
    _run_keytool("-importcert", "-alias", "ca", "-file", str(settings.ca_file), "-keystore", str(settings.truststore_file), *store)
    for path in (ca_store, request, signed):
        path.unlink(missing_ok=True)
    log.info("made a test CA and a broker certificate in %s", tls)


def super_user_env(settings: BrokerSettings) -> dict[str, str]:
    """``EPIFLOW_*`` settings that connect epiflow's commands to the secured broker as its super-user."""
    if not settings.secure:
        raise BrokerError(f"the broker in {settings.cache_dir} is not a secured one (start it with `up --secure`)")
    return {
        "EPIFLOW_BROKER": f"kafka://{settings.bootstrap}",
        "EPIFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "EPIFLOW_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "EPIFLOW_KAFKA_SASL_USERNAME": SUPER_USER,
        "EPIFLOW_KAFKA_SASL_PASSWORD": _secrets(settings)["super_password"],
        "EPIFLOW_KAFKA_SSL_CAFILE": str(settings.ca_file),
    }


def _client_options(settings: BrokerSettings) -> dict[str, object]:
    """kafka-python options for the super-user, built by epiflow's one options function."""
    from pipeline.settings import Settings
    from streams.kafka_options import kafka_client_options

    env = super_user_env(settings)
    return kafka_client_options(Settings(
        broker=env["EPIFLOW_BROKER"], insecure_demo_secret=True, kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=SCRAM_MECHANISM, kafka_sasl_username=SUPER_USER,
        kafka_sasl_password=env["EPIFLOW_KAFKA_SASL_PASSWORD"], kafka_ssl_cafile=settings.ca_file,
    ), "kafka-python")


def _format_storage(settings: BrokerSettings) -> None:
    cluster_id = _random_cluster_id()
    command = _java_command(
        settings,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(settings.config_file),
        *(("--add-scram", f"{SCRAM_MECHANISM}=[name={SUPER_USER},password={_secrets(settings)['super_password']}]")
          if settings.secure else ()),
        heap=("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"),
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        if settings.secure:
            output = output.replace(_secrets(settings)["super_password"], "***")
        raise BrokerStartError(f"formatting {settings.data_dir} failed (exit {result.returncode}):\n{output}")
    log.info("formatted %s for cluster %s", settings.data_dir, cluster_id)


def _data_formatted(settings: BrokerSettings) -> bool:
    return (settings.data_dir / "meta.properties").is_file()


def _rotate_log(settings: BrokerSettings) -> None:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    if settings.log_file.exists():
        settings.log_file.replace(settings.log_file.with_suffix(".log.prev"))


def _wait_healthy(settings: BrokerSettings, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerStartError(
                f"broker exited with {process.returncode} during start-up; last log lines:\n{log_tail(settings=settings)}"
            )
        if _port_open(settings.port) and _metadata_ok(settings.bootstrap, timeout_ms=3000, settings=settings):
            return
        time.sleep(0.25)
    _kill(process.pid, timeout=5.0)
    raise BrokerStartError(
        f"broker did not answer metadata on {settings.bootstrap} within the timeout; "
        f"last log lines:\n{log_tail(settings=settings)}"
    )


def _start_unlocked(settings: BrokerSettings, keep_data: bool, timeout: float) -> tuple[str, bool]:
    """Start the broker unless it already runs; returns (bootstrap, started_now)."""
    pid = _live_pid(settings)
    if pid is not None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _metadata_ok(settings.bootstrap, timeout_ms=3000, settings=settings):
                return settings.bootstrap, False
            if _live_pid(settings) is None:
                break
            time.sleep(0.5)
        else:
            raise BrokerStartError(
                f"broker pid {pid} is running but {settings.bootstrap} does not answer metadata; "
                f"run `python -m tools.kafka_broker down`. Last log lines:\n{log_tail(settings=settings)}"
            )
    for port in (settings.port, settings.controller_port):
        if _port_open(port) and not _wait_port_closed(port, timeout=5.0):
            raise PortInUseError(
                f"port {port} on {HOST} is already in use by another process; "
                "stop it or choose other ports with EPIFLOW_KAFKA_PORT / EPIFLOW_KAFKA_CONTROLLER_PORT"
            )
    if settings.secure and not settings.lib_dir.exists():
        settings.lib_dir.symlink_to(fetch_jars(), target_is_directory=True)
    _fetch_unlocked(settings)
    if settings.secure:
        _ensure_tls(settings)
        _write_private(settings.admin_env_file, "".join(f"{k}={v}\n" for k, v in super_user_env(settings).items()))
    _write_config(settings)
    if not (keep_data and _data_formatted(settings)):
        shutil.rmtree(settings.data_dir, ignore_errors=True)
        _format_storage(settings)
    _rotate_log(settings)
    settings.started_by_lease_file.unlink(missing_ok=True)
    started = time.monotonic()
    with open(settings.log_file, "ab") as out:
        process = subprocess.Popen(
            _java_command(settings, _MAIN_CLASS, str(settings.config_file)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.cache_dir,
        )
    _CHILDREN[process.pid] = process
    settings.pid_file.write_text(f"{process.pid}\n")
    _wait_healthy(settings, process, started + timeout)
    log.info(
        "broker pid %d healthy on %s after %.1f s",
        process.pid,
        settings.bootstrap,
        time.monotonic() - started,
    )
    return settings.bootstrap, True


def ensure_broker(
    keep_data: bool = False, timeout: float = START_TIMEOUT_S, settings: BrokerSettings | None = None
) -> str:
    """Start the broker if it is not running and healthy; return its bootstrap address.

    With ``keep_data`` an existing, formatted data dir is reused (a restart); otherwise a fresh
    data dir is formatted. A broker that already runs is reused as it is.
    """
    if timeout <= 0:
        raise ValueError(f"timeout={timeout!r} must be positive seconds")
    settings = settings or broker_settings()
    with _locked(settings):
        bootstrap, _ = _start_unlocked(settings, keep_data, timeout)
        return bootstrap


# --------------------------------------------------------------------------- stop


def _exited(pid: int) -> bool:
    """True once ``pid`` has fully exited (gone or a zombie), i.e. its sockets are closed."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    if stat.rpartition(")")[2].split()[0] in {"Z", "X"}:
        _reap(pid)
        return True
    return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.1)
    return _exited(pid)


def _kill(pid: int, timeout: float = STOP_TIMEOUT_S, force: bool = False) -> None:
    """SIGTERM (or SIGKILL when ``force``), wait up to ``timeout``, then SIGKILL."""
    first = signal.SIGKILL if force else signal.SIGTERM
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, first)
    if _wait_gone(pid, timeout):
        return
    log.warning("broker pid %d ignored SIGTERM for %.0f s; sending SIGKILL", pid, timeout)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 10.0):
        raise BrokerError(f"broker pid {pid} survived SIGKILL")


def _stop_unlocked(settings: BrokerSettings, keep_data: bool, force: bool, timeout: float) -> bool:
    pid = _live_pid(settings)
    if pid is not None:
        log.info("stopping broker pid %d (%s)", pid, "SIGKILL" if force else "SIGTERM")
        _kill(pid, timeout=timeout, force=force)
    settings.pid_file.unlink(missing_ok=True)
    settings.started_by_lease_file.unlink(missing_ok=True)
    if not keep_data:
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    return pid is not None


def stop_broker(
    keep_data: bool = False,
    force: bool = False,
    timeout: float = STOP_TIMEOUT_S,
    settings: BrokerSettings | None = None,
) -> bool:
    """Stop the broker; True if one was running.

    ``keep_data`` leaves the data dir for a later ``ensure_broker(keep_data=True)``; ``force``
    sends SIGKILL straight away (a crash, for failure drills).
    """
    if timeout <= 0:
        raise ValueError(f"timeout={timeout!r} must be positive seconds")
    settings = settings or broker_settings()
    with _locked(settings):
        return _stop_unlocked(settings, keep_data, force, timeout)


def restart_broker(
    force: bool = False, timeout: float = START_TIMEOUT_S, settings: BrokerSettings | None = None
) -> str:
    """Stop the broker and start it again on the same data dir; return its bootstrap address."""
    settings = settings or broker_settings()
    with _locked(settings):
        _stop_unlocked(settings, keep_data=True, force=force, timeout=STOP_TIMEOUT_S)
        bootstrap, _ = _start_unlocked(settings, keep_data=True, timeout=timeout)
        return bootstrap


# --------------------------------------------------------------------------- leases


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_leases(settings: BrokerSettings) -> list[Path]:
    """Lease files whose holder process still exists; stale ones are removed."""
    live = []
    for lease in settings.leases_dir.glob("*.lease"):
        try:
            holder = int(lease.stem.split("-", 1)[0])
        except ValueError:
            holder = -1
        if holder > 0 and _pid_alive(holder):
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


@contextlib.contextmanager
def shared_broker(
    timeout: float = START_TIMEOUT_S, start: bool = True, settings: BrokerSettings | None = None
) -> Iterator[str]:
    """Hold the broker for a block (a test session); yields the bootstrap address.

    A broker someone started with ``up`` is used and left running. A broker started by a
    holder is stopped when the last live holder leaves, so parallel sessions on one
    checkout share one broker and none pulls it from under another. With ``start=False`` a
    broker that is not running is an error instead of being started.
    """
    settings = settings or broker_settings()
    lease = settings.leases_dir / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.lease"
    with _locked(settings):
        if not start and _live_pid(settings) is None:
            raise BrokerError(
                f"no test broker running on {settings.bootstrap}; run `python -m tools.kafka_broker up`"
            )
        bootstrap, started_now = _start_unlocked(settings, keep_data=False, timeout=timeout)
        if started_now:
            settings.started_by_lease_file.write_text(f"{os.getpid()}\n")
        settings.leases_dir.mkdir(parents=True, exist_ok=True)
        lease.write_text(f"{bootstrap}\n")
    try:
        yield bootstrap
    finally:
        with _locked(settings):
            lease.unlink(missing_ok=True)
            if not _live_leases(settings) and settings.started_by_lease_file.exists():
                _stop_unlocked(settings, keep_data=False, force=False, timeout=STOP_TIMEOUT_S)


def _stop_when_idle(settings: BrokerSettings) -> str:
    """Stop the broker now, or, while sessions hold leases on it, hand the stop to the last of them."""
    with _locked(settings):
        holders = _live_leases(settings)
        if holders and _live_pid(settings) is not None:
            settings.started_by_lease_file.write_text("handed over by `down --when-idle`\n")
            return f"broker in use by {len(holders)} session(s); the last of them will stop it"
        stopped = _stop_unlocked(settings, keep_data=False, force=False, timeout=STOP_TIMEOUT_S)
        return "broker stopped" if stopped else "broker was not running"


# --------------------------------------------------------------------------- CLI


def _status(settings: BrokerSettings) -> int:
    pid = _live_pid(settings)
    healthy = pid is not None and _metadata_ok(settings.bootstrap, settings=settings)
    state = "running" if healthy else ("unhealthy" if pid is not None else "stopped")
    lines = [
        f"kafka {kafka_version()}: {state}",
        f"  bootstrap   {settings.bootstrap}",
        f"  pid         {pid if pid is not None else '-'}",
        f"  jars        {'fetched' if _jars_complete(settings) else 'not fetched'} ({settings.lib_dir})",
        f"  data        {'formatted' if _data_formatted(settings) else 'none'} ({settings.data_dir})",
        f"  log         {settings.log_file}",
    ]
    print("\n".join(lines))
    return 0 if healthy else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.kafka_broker",
        description="Single-node Apache Kafka broker for tests, from Maven Central jars.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download the broker's jars into the cache (skipped when complete)")
    up = sub.add_parser("up", help="start the broker (fresh data dir) unless it is running; print bootstrap")
    up.add_argument(
        "--keep-data", action="store_true", help="reuse the existing data dir instead of a fresh one"
    )
    up.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait for health")
    down = sub.add_parser(
        "down", help="stop the broker (SIGTERM, then SIGKILL after 30 s) and remove its data"
    )
    down.add_argument("--keep-data", action="store_true", help="leave the data dir for `up --keep-data`")
    down.add_argument(
        "--when-idle",
        action="store_true",
        help="if test sessions hold the broker, leave it to the last of them to stop it",
    )
    down.add_argument("--force", action="store_true", help="SIGKILL at once, as in a crash")
    restart = sub.add_parser("restart", help="stop and start again on the same data dir")
    restart.add_argument("--force", action="store_true", help="SIGKILL instead of a clean shutdown")
    restart.add_argument("--timeout", type=float, default=START_TIMEOUT_S, help="seconds to wait for health")
    status = sub.add_parser("status", help="show whether the broker runs; exit 1 if it is not healthy")
    for command in (up, down, restart, status):
        command.add_argument(
            "--secure", action="store_true",
            help="the secured broker (SASL_SSL, SCRAM-SHA-512, ACLs) on its own ports and data, beside the plaintext one",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        settings = secure_broker_settings() if getattr(args, "secure", False) else broker_settings()
        if args.command == "fetch":
            started = time.monotonic()
            lib = fetch_jars(settings)
            print(f"kafka {kafka_version()} jars in {lib} ({time.monotonic() - started:.1f} s)")
            return 0
        if args.command == "status":
            return _status(settings)
        if args.command == "down" and args.when_idle:
            print(_stop_when_idle(settings))
            return 0
        if args.command == "down":
            stopped = stop_broker(keep_data=args.keep_data, force=args.force, settings=settings)
            print("broker stopped" if stopped else "broker was not running")
            return 0
        started = time.monotonic()
        if args.command == "restart":
            bootstrap = restart_broker(force=args.force, timeout=args.timeout, settings=settings)
            print(f"broker restarted on {bootstrap} ({time.monotonic() - started:.1f} s)")
            return 0
        with _locked(settings):
            bootstrap, started_now = _start_unlocked(settings, args.keep_data, args.timeout)
            settings.started_by_lease_file.unlink(missing_ok=True)
        if started_now:
            print(f"broker up on {bootstrap} ({time.monotonic() - started:.1f} s)")
        else:
            print(f"broker already running on {bootstrap}")
        if settings.secure:
            print(f"  SASL_SSL, {SCRAM_MECHANISM}; CA certificate {settings.ca_file}")
            print(f"  super-user {SUPER_USER!r}: its EPIFLOW_* settings are in {settings.admin_env_file}")
        return 0
    except BrokerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
