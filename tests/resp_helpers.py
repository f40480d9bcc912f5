"""Helpers for the RESP tests: run ``eventkv serve`` in a subprocess, wait until it answers, stop it.

``ServerProcess(data_dir, *options).start()`` spawns ``python -m eventkv.cli serve
--port 0 --no-http --data-dir DIR ...`` with the repository on ``PYTHONPATH``,
reads the port it announces (``Server started on localhost:PORT``) and waits until
that port answers PING.  ``stop()`` sends SIGTERM (a clean stop: the log is made
durable) and waits; ``kill()`` is a crash.  Always stopped in teardown: use it as a
context manager or through the fixtures of the test modules.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: how long a server may take to start on a slow machine (not a timing assertion: a hang guard)
START_TIMEOUT = 30.0
_STARTED = re.compile(rb"Server started on \S+:(\d+)")


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTKV_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventkv(*args: str, timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m eventkv.cli ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "eventkv.cli", *args], env=environment(), cwd=ROOT,
                          capture_output=True, timeout=timeout, input=input)


def ping(port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class ServerProcess:
    """An ``eventkv serve`` subprocess on a data directory."""

    def __init__(self, data_dir: str | os.PathLike[str], *options: str, port: int = 0) -> None:
        self.data_dir = os.fspath(data_dir)
        self.options = list(options)
        self.requested_port = port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = b""

    def start(self) -> ServerProcess:
        command = [sys.executable, "-m", "eventkv.cli", "serve", "--port", str(self.requested_port), "--no-http",
                   "--data-dir", self.data_dir, *self.options]
        self.proc = subprocess.Popen(command, env=environment(), cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                self.output += chunk
                match = _STARTED.search(self.output)
                if match:
                    self.port = int(match.group(1))
                    break
                if not chunk:
                    break
            if self.proc.poll() is not None:
                break
        if not self.port:
            err = self._finish()
            raise RuntimeError(f"the server did not start: {self.output!r} {err!r}")
        while not ping(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                err = self._finish()
                raise RuntimeError(f"the server does not answer PING: {err!r}")
            time.sleep(0.05)
        return self

    def _finish(self) -> bytes:
        if self.proc is None:
            return b""
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        return err

    def stop(self) -> int:
        """SIGTERM and wait: the exit status (0 for a clean stop)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        out, self.stderr = self.proc.communicate(timeout=30)
        self.output += out or b""
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.communicate(timeout=30)
            self.proc = None

    def client(self, **kwargs: Any) -> Any:
        """A redis-py client on this server."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=30, **kwargs)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
