"""Run `epiflow worker` as a subprocess: start it with an environment, wait until its rules are loaded,
read its `/api/status`, stop it cleanly (SIGTERM) or crash it (SIGKILL). Logs go to a temp dir.

Used by the multi-worker tests, the failure drills and the benchmarks, so the API stays small:
`start_worker(settings_env, web_port) -> WorkerProcess` with `.status()`, `.wait_ready(timeout)`,
`.kill()`, `.terminate()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WorkerError", "WorkerProcess", "start_worker"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class WorkerError(RuntimeError):
    """A worker subprocess exited, or did not become ready, when it was expected to run."""


@dataclass
class WorkerProcess:
    """One `epiflow worker` subprocess and where to reach it."""

    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path
    env: dict[str, str] = field(repr=False)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def status(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """The worker's `/api/status` JSON, or None while it does not answer."""
        url = f"http://127.0.0.1:{self.web_port}/api/status"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as reply:
                return json.loads(reply.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def counts(self) -> dict[str, int]:
        """The worker's counts (inputs, forwarded, dead_lettered, ...), empty while it does not answer."""
        status = self.status()
        return dict(status["counts"]) if status else {}

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float, what: str = "condition") -> dict[str, Any]:
        """Poll `/api/status` until `predicate(status)` holds; raise WorkerError if it exits or times out."""
        if timeout <= 0:
            raise ValueError(f"timeout={timeout!r} must be positive seconds")
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive:
                raise WorkerError(f"worker pid {self.pid} exited with {self.returncode} waiting for {what}; "
                                  f"log tail:\n{self.log_tail()}")
            status = self.status()
            if status is not None and predicate(status):
                return status
            if time.monotonic() > deadline:
                raise WorkerError(f"worker pid {self.pid} not at {what} after {timeout:.0f} s "
                                  f"(last status {status}); log tail:\n{self.log_tail()}")
            time.sleep(0.2)

    def wait_ready(self, timeout: float = 60.0, min_regions: int = 0) -> dict[str, Any]:
        """Wait until `/api/status` reports a rules version (and at least `min_regions` regions); returns it."""
        return self.wait_for(lambda s: bool(s.get("rules_version")) and s.get("regions", 0) >= min_regions,
                             timeout, "rules loaded")

    def kill(self) -> int:
        """SIGKILL, as in a crash; returns the exit code."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean stop; SIGKILL after `timeout` seconds. Returns the exit code."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return self.kill()
        return self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return "".join(deque(handle, maxlen=lines))
        except FileNotFoundError:
            return f"(no log at {self.log_path})"


def start_worker(
    settings_env: Mapping[str, str],
    web_port: int,
    *,
    log_dir: Path | None = None,
    name: str = "worker",
    loglevel: str = os.environ.get("EPIFLOW_WORKER_LOGLEVEL", "warning"),
) -> WorkerProcess:
    """Start `epiflow worker --web-port PORT` with `settings_env` (EPIFLOW_* variables) over this environment.

    stdout and stderr go to `<log_dir>/<name>-<port>.log` (a fresh temp dir when not given).
    """
    if not 0 < web_port < 65536:
        raise ValueError(f"web_port={web_port!r} is expected to be a port number 1..65535")
    bad = [k for k in settings_env if not k.isupper()]
    if bad:
        raise ValueError(f"settings_env keys {bad!r} are expected to be environment variable names (EPIFLOW_*, "
                         "or Faust's own such as BROKER_SESSION_TIMEOUT)")
    folder = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="epiflow-workers-"))
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / f"{name}-{web_port}.log"
    env = {**os.environ, **{k: str(v) for k, v in settings_env.items()}}
    command = [sys.executable, "-m", "streams.cli", "worker", "--web-port", str(web_port), f"--loglevel={loglevel}"]
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(process=process, web_port=web_port, log_path=log_path, env=env)
