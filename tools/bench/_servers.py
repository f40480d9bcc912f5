"""What the server benchmarks share: a free loopback port, and waiting until a server answers PING."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Return once the server on ``port`` answers PING; RuntimeError if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read().decode(errors="replace").strip() if proc.stderr is not None else ""
            command = proc.args if isinstance(proc.args, str) else " ".join(map(str, proc.args))  # type: ignore[arg-type]
            raise RuntimeError(f"{command} exited with status {proc.returncode}"
                               + (f": {said}" if said else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no answer on port {port}")


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server process as an operator would (SIGTERM), killing it if it does not stop within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
