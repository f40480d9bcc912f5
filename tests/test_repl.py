"""The REPL (``frontends/repl.py``) as a user meets it: a subprocess with stdin piped (and one on a terminal)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from eventkv import Store
from eventkv.commands import SEED, AliasBook, Command, CommandTable, Session
from frontends.repl import GOODBYE, HINT, WELCOME, Repl, completions

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "EVENTKV_HISTORY": "", **extra}


def eventkv(tmp_path: Path, stdin: str | bytes, *args: str, data_dir: bool = True) -> subprocess.CompletedProcess[str]:
    """``eventkv repl --data-dir <tmp>/data ARGS`` with ``stdin`` piped in."""
    argv = [sys.executable, "-m", "eventkv.cli", "repl"]
    if data_dir:
        argv += ["--data-dir", str(tmp_path / "data")]
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([*argv, *args], input=data, capture_output=True, timeout=60, env=_env(), cwd=tmp_path)
    out = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8", "replace"),
                                      done.stderr.decode("utf-8", "replace"))
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    return out


def in_process(tmp_path: Path, stdin: str | bytes, *args: str, capsys: Any,
               monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """``eventkv repl --data-dir <tmp>/data ARGS`` run by ``eventkv.cli.main`` in this process: fast."""
    from eventkv.cli import main

    data = stdin.encode() if isinstance(stdin, str) else stdin
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    monkeypatch.setenv("EVENTKV_HISTORY", "")
    # structlog would keep writing to this test's captured stderr after the test: leave its setup alone
    monkeypatch.setattr("eventkv.logging.configure", lambda *a, **k: None)
    status = main(["repl", "--data-dir", str(tmp_path / "data"), *args])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return status, out, err


def transcript(text: str) -> tuple[str, str]:
    """(what a person typed, what the screen shows) of a README example; typed lines start with ``cmd>> ``."""
    shown = textwrap.dedent(text).lstrip("\n")
    typed = [line[len("cmd>> "):] for line in shown.splitlines() if line.startswith("cmd>> ")]
    return "".join(line + "\n" for line in typed), f"{WELCOME}\n{HINT}\n" + shown


# --------------------------------------------------------------------- piped: results only


def test_piped_prints_results_and_errors_one_line_each(tmp_path: Path) -> None:
    done = eventkv(tmp_path, "put a 1\nget a\nput greeting \"hello world\" 60\nget greeting\nkeys\nexists c\n"
                             "get missing\n\n   \nitems\nput a\ngett a\nput a 1 x\n'unbalanced\nsize\n")
    assert done.stdout.splitlines() == [
        "'1'", "'hello world'", "['a', 'greeting']", "False", "None", "[('a', '1'), ('greeting', 'hello world')]",
        "ERR wrong number of arguments for 'put' (usage: put <key> <value> [ttl_seconds])",
        "ERR unknown command 'gett' (did you mean 'get'?)",
        "ERR ttl must be a non-negative integer",
        "ERR unbalanced quotes in request",
        "2",
    ]
    assert done.stderr == ""
    assert done.returncode == 1  # a command failed


def test_piped_exit_stops_reading_and_keeps_the_data(tmp_path: Path, capsys: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert in_process(tmp_path, "put a 1 100\nexit\nput b 2 100\n", capsys=capsys, monkeypatch=monkeypatch) == (
        0, "", "")
    with Store.open(tmp_path / "data", background=False) as store:
        assert store.items() == [("a", "1")]


def test_every_command_through_the_repl(tmp_path: Path) -> None:
    script = tmp_path / "batch.txt"
    script.write_text("put f 1 100\nget f\n", encoding="utf-8")
    lines = [
        ("put a 1 100", None), ("put b 2 0", None), ("get a", "'1'"), ("exists a", "True"), ("size", "2"),
        ("keys", "['a', 'b']"), ("values", "['1', '2']"), ("items", "[('a', '1'), ('b', '2')]"),
        ("ttl a", "100"), ("ttl b", "-1"), ("expire b 50", "True"), ("persist b", "True"), ("ttl zz", "-2"),
        ("delete a", None), ("get a", "None"),
        ("begin", None), ("put t 1 100", None), ("get t", "'1'"), ("rollback", None), ("get t", "None"),
        ("begin", None), ("put t 1 100", None), ("commit", None), ("get t", "'1'"),
        ('batch -c "put x 1 100; get x"', "[None, '1']"), (f"batch -f {script}", "[None, '1']"),
        ("find -k -l [bt]", "['b', 't']"), ("find -v -r ^2$", "['b']"),
        ("alias k keys", None), ("k", "['b', 't', 'x', 'f']"), ("show-alias", "set: put\nv: values\nk: keys"),
        ("reset-alias", None), ("show-alias", "set: put\nv: values"),
        ("select 1", None), ("keys", "[]"), ("select 0", None), ("help get", "get <key>  the value of key, or "
                                                                          "None if it is absent or expired"),
        ("clear", None), ("keys", "[]"), ("exit", None),
    ]
    done = eventkv(tmp_path, "".join(line + "\n" for line, _ in lines))
    assert done.returncode == 0
    assert done.stdout == "".join(out + "\n" for _, out in lines if out is not None)


def test_help_lists_every_command(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = in_process(tmp_path, "help\n", capsys=capsys, monkeypatch=monkeypatch)
    shown = out.splitlines()
    assert len(shown) == len(SEED)
    for command, line in zip(SEED, shown, strict=True):
        assert line.startswith(command.usage) and line.endswith(command.help)


def test_bytes_that_are_not_utf8(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    done = in_process(tmp_path, b"put k\xff v 100\nkeys\nfind -k -l k?\n", capsys=capsys, monkeypatch=monkeypatch)
    assert done == (0, "['k\\udcff']\n['k\\udcff']\n", "")


# --------------------------------------------------------------------- the original README's transcripts


# (data the example starts with, the example as the README shows it); log lines and the
# original's "Appending to AOF: ..." trace are left out: they are not part of the REPL's output.
EXAMPLES = {
    "usage": ({"a": "1", "b": "2", "c": "3"}, """
        cmd>> keys
        ['a', 'b', 'c']
        cmd>> delete c
        cmd>> exists c
        False
        cmd>> exit\x20
        Exiting...
        """),
    "alias": ({"z": "1", "2": "1"}, """
        cmd>> alias k keys
        cmd>> k
        ['z', '2']
        cmd>> alias i items
        cmd>> i
        [('z', '1'), ('2', '1')]
        cmd>> show-alias
        set: put
        v: values
        k: keys
        i: items
        cmd>> exit
        Exiting...
        """),
    "batch": ({}, """
        cmd>> batch -c "put a 1 10000; put b 1 10000; get a; get b;"
        Executing batch command not in transaction mode
        [None, None, '1', '1']
        cmd>> exit\x20
        Exiting...
        """),
    "find": ({}, """
        cmd>> put a 1 10000
        cmd>> put b 2 10000
        cmd>> put c 1 10000
        cmd>> items
        [('a', '1'), ('b', '2'), ('c', '1')]
        cmd>> find -k a
        ['a']
        cmd>> find -k -l *
        ['a', 'b', 'c']
        cmd>> exit
        Exiting...
        """),
}


def _seed_data(data_dir: Path, items: dict[str, str]) -> None:
    with Store.open(data_dir, background=False) as store:
        for key, value in items.items():
            store.put(key, value, ttl=10000)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_transcripts_of_the_original_readme(name: str, tmp_path: Path, capsys: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    items, text = EXAMPLES[name]
    _seed_data(tmp_path / "data", items)
    typed, screen = transcript(text)
    assert in_process(tmp_path, typed, "--interactive", capsys=capsys, monkeypatch=monkeypatch) == (0, screen, "")


def test_transcript_through_python_main_py(tmp_path: Path) -> None:
    """The README's own start: ``python main.py`` in a directory, on ``./meta-data``, as a subprocess."""
    items, text = EXAMPLES["usage"]
    _seed_data(tmp_path / "meta-data", items)
    typed, screen = transcript(text)
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "-i"], input=typed.encode(), capture_output=True,
                          timeout=60, env=_env(), cwd=tmp_path)
    assert done.stdout.decode() == screen
    assert done.returncode == 0
    assert b"Traceback" not in done.stderr
    with Store.open(tmp_path / "meta-data", background=False) as store:  # closed cleanly, delete kept
        assert store.keys() == ["a", "b"]


def test_aliases_are_loaded_at_start(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed_data(tmp_path / "data", {"z": "1"})
    in_process(tmp_path, "alias k keys\n", capsys=capsys, monkeypatch=monkeypatch)
    assert (tmp_path / "data" / "alias.json").exists()
    assert in_process(tmp_path, "k\n", capsys=capsys, monkeypatch=monkeypatch)[1] == "['z']\n"


def test_batch_notice_only_outside_a_transaction(tmp_path: Path, capsys: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = in_process(tmp_path, "begin\nbatch -c 'put a 1 100; get a'\ncommit\nexit\n", "-i",
                           capsys=capsys, monkeypatch=monkeypatch)
    assert "Executing batch" not in out
    assert "[None, '1']" in out
    assert in_process(tmp_path, "batch -c 'get a'\n", capsys=capsys, monkeypatch=monkeypatch)[1] == "['1']\n"


# --------------------------------------------------------------------- start, options, end


def test_eventkv_without_arguments_is_the_repl(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from eventkv.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"put a 1 100\nget a\n")))
    assert main([]) == 0
    assert capsys.readouterr().out == "'1'\n"
    assert (tmp_path / "meta-data" / "AOF.txt").exists()


def test_db_option_and_select_show_in_the_prompt(tmp_path: Path, capsys: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = in_process(tmp_path, "put a 2 100\nselect 0\nget a\nselect 3\n", "--db", "2", "-i",
                           capsys=capsys, monkeypatch=monkeypatch)
    assert out == (f"{WELCOME}\n{HINT}\ncmd[2]>> put a 2 100\ncmd[2]>> select 0\ncmd>> get a\nNone\n"
                           f"cmd>> select 3\ncmd[3]>> \n{GOODBYE}\n")
    status, _, err = in_process(tmp_path, "", "--db", "16", capsys=capsys, monkeypatch=monkeypatch)
    assert status == 2
    assert "DB index is out of range" in err


def test_settings_options(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def run(stdin: str, *args: str) -> tuple[int, str, str]:
        return in_process(tmp_path, stdin, *args, capsys=capsys, monkeypatch=monkeypatch)

    assert run("put a 1\nttl a\n", "--default-ttl", "0") == (0, "-1\n", "")
    assert run("put b 1\nttl b\n", "--default-ttl", "30", "--fsync", "always") == (0, "30\n", "")
    config = tmp_path / "eventkv.conf"
    config.write_text("default-ttl 100\n", encoding="utf-8")
    assert run("put c 1\nttl c\n", "--config", str(config)) == (0, "100\n", "")
    status, _, err = run("", "--default-ttl", "soon")
    assert status == 1
    assert err.startswith("eventkv: default_ttl must be")


def test_end_of_input_exits_cleanly_and_rolls_back(tmp_path: Path, capsys: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _, out, _ = in_process(tmp_path, "put a 1 100\nbegin\nput b 2 100\n", "-i", capsys=capsys, monkeypatch=monkeypatch)
    assert out.endswith("cmd>> \nThe open transaction was rolled back\nExiting...\n")
    with Store.open(tmp_path / "data", background=False) as store:
        assert store.items() == [("a", "1")]


def test_a_damaged_alias_file_is_reported(tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alias.json").write_text("{oops", encoding="utf-8")
    status, out, err = in_process(tmp_path, "keys\n", capsys=capsys, monkeypatch=monkeypatch)
    assert status == 1
    assert err.startswith("eventkv: cannot read the aliases in") and "alias.json" in err
    assert out == ""


# --------------------------------------------------------------------- in-process: bugs, completion


def test_a_bug_is_one_line_and_the_loop_goes_on(tmp_path: Path) -> None:
    def broken(session: Session, args: list[str]) -> Any:
        raise ZeroDivisionError("division by zero")

    with Store.open(tmp_path / "data", background=False) as store:
        table = SEED.merged(CommandTable("bugs", [Command("broken", "fails", broken)]))
        out = io.StringIO()
        repl = Repl(Session(store, table=table), out, interactive=False, scripted=True)
        status = repl.run_piped(["broken", "put a 1 100", "get a"])
    assert out.getvalue() == "ERR internal error: ZeroDivisionError: division by zero\n'1'\n"
    assert status == 1


@pytest.fixture
def completing(tmp_path: Path) -> Any:
    with Store.open(tmp_path / "data", background=False) as store:
        for key in ("user:1", "user:2", "x y"):
            store.put(key, "v", ttl=None)
        session = Session(store, AliasBook())
        session.execute(["alias", "gu", "get"])
        yield session


@pytest.mark.parametrize("text, typed, offered", [
    ("sho", "sho", ["show-alias"]),
    ("g", "g", ["get", "gu"]),
    ("get us", "us", ["user:1", "user:2"]),
    ("get x", "x", ["'x y'"]),
    ("gu user:", "user:", ["user:1", "user:2"]),
    ("help rol", "rol", ["rollback"]),
    ("put user:1 ", "", []),
    ("find -k ", "", []),
    ('get "us', '"us', []),
])
def test_tab_completion(completing: Session, text: str, typed: str, offered: list[str]) -> None:
    assert completions(completing, text) == (typed, offered)


def test_completion_offers_every_name_first(completing: Session) -> None:
    typed, offered = completions(completing, "")
    assert typed == ""
    assert offered == [*SEED.names(), "set", "v", "gu"]


# --------------------------------------------------------------------- on a terminal


def _control(child: Any, key: str) -> None:
    """Press Ctrl-``key`` once the line editor holds the terminal (before, the tty would take it as a signal)."""
    time.sleep(0.3)
    child.sendcontrol(key)


def test_on_a_terminal(tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    history = tmp_path / "history"
    env = _env(EVENTKV_HISTORY=str(history), TERM="dumb")
    argv = ["-m", "eventkv.cli", "repl", "--data-dir", str(tmp_path / "data")]
    child = pexpect.spawn(sys.executable, argv, env=env, cwd=str(tmp_path), timeout=20, encoding="utf-8")
    try:
        child.expect_exact(WELCOME)
        child.expect_exact(HINT)
        child.expect_exact("cmd>> ")
        child.sendline("put a 1 100")
        child.expect_exact("cmd>> ")
        child.send("get zzz")
        _control(child, "c")  # Ctrl-C drops the line
        child.expect_exact("cmd>> ")
        child.send("ge\t")  # Tab completes "get"
        child.expect_exact("get")
        child.send(" a\r")
        child.expect_exact("'1'")
        child.expect_exact("cmd>> ")
        _control(child, "d")  # Ctrl-D: as exit
        child.expect_exact(GOODBYE)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "get a" in history.read_text(encoding="utf-8")
    assert "get zzz" not in history.read_text(encoding="utf-8")
