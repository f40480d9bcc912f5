"""Real Redis tools against ``eventkv serve``: redis-cli and redis-benchmark (Debian's ``redis-tools``).

Skipped with a reason when the binaries are missing -- except under CI (``CI`` set),
where a missing binary is a failure: ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from resp_helpers import ServerProcess


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: CI must provide it (.ci/run installs Debian's redis-tools)")
        pytest.skip(f"{name} is not installed (Debian: apt-get install redis-tools)")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("peers-data")) as s:
        yield s


def cli(server: ServerProcess, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([tool("redis-cli"), "-p", str(server.port), *args], capture_output=True, timeout=60,
                          input=input)


def test_redis_cli_set_and_get(server: ServerProcess) -> None:
    assert cli(server, "set", "a", "1").stdout == b"OK\n"
    assert cli(server, "get", "a").stdout == b"1\n"
    assert cli(server, "--no-raw", "get", "a").stdout == b'"1"\n'
    assert cli(server, "--no-raw", "incr", "n").stdout == b"(integer) 1\n"
    assert cli(server, "--no-raw", "get", "nothing").stdout == b"(nil)\n"
    assert cli(server, "-n", "3", "set", "in3", "x").stdout == b"OK\n"
    assert b"db3:keys=1" in cli(server, "info", "keyspace").stdout


def test_redis_cli_reads_commands_from_stdin(server: ServerProcess) -> None:
    done = cli(server, input=b"set piped 'a b'\nget piped\nnosuch x\n")
    lines = [line for line in done.stdout.splitlines() if line]
    assert lines == [b"OK", b"a b", b"ERR unknown command 'nosuch', with args beginning with: 'x' "]


def test_redis_cli_scan(server: ServerProcess) -> None:
    keys = [f"scan:{i}" for i in range(120)]
    assert cli(server, "mset", *[x for k in keys for x in (k, "v")]).stdout == b"OK\n"
    done = cli(server, "--scan", "--pattern", "scan:*")  # pages of 10: many cursors
    assert sorted(done.stdout.decode().split()) == sorted(keys)


@pytest.mark.parametrize("pipeline", ["1", "16"])
def test_redis_benchmark_completes_without_errors(server: ServerProcess, pipeline: str) -> None:
    done = subprocess.run([tool("redis-benchmark"), "-p", str(server.port), "-t", "set,get", "-n", "2000", "-q",
                           "-P", pipeline], capture_output=True, timeout=120)
    out = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, out
    lines = [line.strip() for line in out.replace("\r", "\n").splitlines() if "requests per second" in line]
    assert [line.split(":")[0] for line in lines] == ["SET", "GET"], out
    assert "error" not in out.lower() and "ERR" not in out, out


def test_keys_written_by_the_tools_are_ordinary_events(server: ServerProcess) -> None:
    cli(server, "set", "from-cli", "1")
    log = Path(server.data_dir, "AOF.txt").read_text()
    assert any('"key":"from-cli"' in line and '"op":"put"' in line for line in log.splitlines())
