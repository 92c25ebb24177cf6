"""A real server on a free port of 127.0.0.1, for tests and benchmarks: started in its own process group,
ready when a URL answers 200, stopped by its group. One home for `bentoml serve`, `mlflow ui` and `mlflow
models serve` in the tests and for the benchmarks' `bentoml serve` (benchmarks/common.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POLL_S = 0.25  # how often readiness is asked: a server is used a quarter of a second after it is up, not a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path | None, timeout_s: float) -> None:
    """Until `url` answers 200; RuntimeError (with the log's tail) if the server exits or is not ready in time."""
    import requests

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log else "(no log kept)"

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited:\n{tail()}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[:3]} was not ready within {timeout_s:.0f} s:\n{tail()}")
        time.sleep(POLL_S)


def launch(args: list[str], env: dict[str, str], log: Path | None = None, cwd: Path = ROOT
           ) -> tuple[subprocess.Popen, IO[bytes] | None]:
    """Start `args` in its own process group, output to `log` (or nowhere), without waiting: two servers can
    start at once (`wait_ready` each before use, `stop` each after)."""
    out = open(log, "wb") if log else None
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=out or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, out


def start(args: list[str], ready: str, env: dict[str, str], log: Path | None = None, cwd: Path = ROOT,
          timeout_s: float = 240) -> tuple[subprocess.Popen, IO[bytes] | None]:
    """`launch`, then wait until `ready` (a URL) answers 200. Returns the process and the open log file, for
    `stop`; a server that fails to start is stopped."""
    proc, out = launch(args, env, log, cwd)
    try:
        wait_ready(proc, ready, log, timeout_s)
    except BaseException:
        stop(proc, out)  # never leave a server behind
        raise
    return proc, out


def stop(proc: subprocess.Popen, out: IO[bytes] | None = None, timeout_s: float = 30) -> None:
    """SIGTERM to the server's process group, SIGKILL if it is still there after `timeout_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout_s)
            break
        except subprocess.TimeoutExpired:
            continue
    if out:
        out.close()


def start_bentoml(env: dict[str, str], log: Path | None = None, timeout_s: float = 240
                  ) -> tuple[subprocess.Popen, str, IO[bytes] | None]:
    """`bentoml serve` of this project (the model that `env`'s BENTOML_HOME holds) on a free port, ready when
    `/readyz` answers 200. Returns the process, its URL and the open log file."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc, out = start([str(BIN / "bentoml"), "serve", "--host", "127.0.0.1", "--port", str(port)], f"{url}/readyz",
                      env, log, timeout_s=timeout_s)
    return proc, url, out


def session_from(address: str):
    """A `requests.Session` whose connections leave from `address`: all of 127.0.0.0/8 is loopback, so a client
    bound to 127.0.0.2 is another client address to a server on 127.0.0.1 (per-address limits)."""
    import requests
    from requests.adapters import HTTPAdapter

    class SourceAddress(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = (address, 0)
            return super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.mount("http://", SourceAddress())
    return session
