"""Settings: defaults <- config file <- EVENTKV_* environment <- arguments, each value checked once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from eventkv import ConfigError, Store
from eventkv.config import NAMES, Config, canonical_name, checked, from_env, load, parse_file


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "eventkv.conf"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_defaults() -> None:
    c = load(env={})
    assert c == Config()
    assert (c.data_dir, c.fsync, c.default_ttl, c.databases, c.hz, c.expiry_slice, c.log_level, c.command_log) == (
        "meta-data", "everysec", 7, 16, 10, 200, "warning", None)


def test_file_then_environment_then_arguments(tmp_path: Path) -> None:
    conf = write(tmp_path, "fsync always\ndatabases 4\nhz 20\ndefault_ttl 30\n")
    assert load(conf, env={}) == Config(fsync="always", databases=4, hz=20, default_ttl=30)
    env = {"EVENTKV_FSYNC": "no", "EVENTKV_DATABASES": "8"}
    c = load(conf, env=env)
    assert (c.fsync, c.databases, c.hz, c.default_ttl) == ("no", 8, 20, 30)
    c = load(conf, env=env, databases=2, default_ttl=None)
    assert (c.fsync, c.databases, c.hz, c.default_ttl) == ("no", 2, 20, None)


def test_the_process_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTKV_HZ", "42")
    monkeypatch.setenv("EVENTKV_LOG_LEVEL", "DEBUG")
    c = load()
    assert c.hz == 42 and c.log_level == "debug"
    assert load(env={}).hz == 10


def test_store_open_reads_environment_and_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTKV_FSYNC", "always")
    monkeypatch.setenv("EVENTKV_DATABASES", "3")
    with Store.open(tmp_path / "d", background=False, databases=5) as s:
        assert s.config.fsync == "always" and s.databases == 5
        assert s.config.data_dir == str(tmp_path / "d")
    with Store.open(tmp_path / "e", background=False, config=Config(databases=2), hz=7) as s:
        assert s.databases == 2 and s.config.hz == 7 and s.config.data_dir == str(tmp_path / "e")


def test_file_syntax(tmp_path: Path) -> None:
    conf = write(tmp_path, "# a comment\n\n  appendfsync   no  \n"
                           "dir \"/srv/my data\"\nDEFAULT-TTL 'none'\nexpiry-slice 5\n")
    assert parse_file(conf) == {"appendfsync": "no", "dir": "/srv/my data", "DEFAULT-TTL": "none", "expiry-slice": "5"}
    c = load(conf, env={})
    assert (c.fsync, c.data_dir, c.default_ttl, c.expiry_slice) == ("no", "/srv/my data", None, 5)


def test_names_and_aliases() -> None:
    assert canonical_name("appendfsync") == "fsync"
    assert canonical_name("dir") == "data_dir"
    assert canonical_name(" Default-TTL ") == "default_ttl"
    assert set(NAMES) >= {"data_dir", "fsync", "default_ttl", "databases", "hz", "expiry_slice", "log_level",
                          "command_log"}
    assert load(env={}, appendfsync="always").fsync == "always"
    assert from_env({"EVENTKV_HZ": "3", "EVENTKV_NOPE": "1", "HZ": "4"}) == {"hz": "3"}


@pytest.mark.parametrize(
    "value, expected",
    [(None, None), (0, None), ("0", None), ("none", None), ("NEVER", None), ("", None), (7, 7), ("2.5", 2.5),
     (0.001, 0.001)],
)
def test_default_ttl_values(value, expected) -> None:
    assert load(env={}, default_ttl=value).default_ttl == expected


@pytest.mark.parametrize(
    "setting, value, words",
    [
        ("fsync", "sometimes", ["fsync", "always, everysec, no", "sometimes"]),
        ("default_ttl", "-1", ["default_ttl", "-1"]),
        ("default_ttl", "soon", ["default_ttl", "soon"]),
        ("default_ttl", "nan", ["default_ttl"]),
        ("default_ttl", True, ["default_ttl"]),
        ("databases", "0", ["databases", "between 1 and"]),
        ("databases", "many", ["databases", "integer", "many"]),
        ("databases", True, ["databases"]),
        ("hz", "1000", ["hz", "between 1 and 500"]),
        ("hz", "0", ["hz"]),
        ("expiry_slice", "0", ["expiry_slice", "at least 1"]),
        ("log_level", "loud", ["log_level", "loud"]),
        ("data_dir", "", ["data_dir"]),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_them(setting: str, value, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load(env={}, **{setting: value})
    for word in words:
        assert word in str(info.value)


def test_a_bad_environment_value_is_refused() -> None:
    with pytest.raises(ConfigError, match="fsync"):
        load(env={"EVENTKV_FSYNC": "maybe"})


def test_an_unknown_setting_is_refused_everywhere(tmp_path: Path) -> None:
    conf = write(tmp_path, "fsync no\n# fine\nfsycn always\n")
    with pytest.raises(ConfigError) as info:
        load(conf, env={})
    message = str(info.value)
    assert conf in message and "line 3" in message and "fsycn" in message and "known:" in message
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load(env={}, colour="blue")
    with pytest.raises(ConfigError, match="unknown setting"):
        checked({"nope": 1})
    with pytest.raises(ConfigError, match="unknown setting"):
        Store.open(tmp_path / "d", background=False, colour="blue")


def test_a_bad_value_in_a_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    conf = write(tmp_path, "databases -3\n")
    with pytest.raises(ConfigError, match="databases") as info:
        load(conf, env={})
    assert str(info.value).startswith(f"{conf}: ")


def test_tabs_separate_as_spaces_and_text_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    assert parse_file(write(tmp_path, "appendfsync\tno\nexpiry-slice \t 5\n")) == {"appendfsync": "no",
                                                                                  "expiry-slice": "5"}
    latin1 = tmp_path / "latin1.conf"
    latin1.write_bytes(b"appendfsync no\ndir /srv/caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1\.conf, line 2: not UTF-8 text \(byte 0xe9\)"):
        parse_file(str(latin1))


def test_a_command_log_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    from eventkv.logging import CommandLog

    with pytest.raises(ConfigError, match="cannot open the command log"):
        CommandLog(str(tmp_path / "no" / "such" / "dir.log"))


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError) as info:
        load(missing, env={})
    assert missing in str(info.value) and "cannot read" in str(info.value)


def test_store_open_refuses_a_bad_value_before_touching_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fsync"):
        Store.open(tmp_path / "d", background=False, fsync="bogus")
    assert not (tmp_path / "d").exists()


def test_command_log_setting() -> None:
    assert load(env={}, command_log="off").command_log is None
    assert load(env={}, command_log="cmd.log").command_log == "cmd.log"


def test_an_infinite_default_ttl_is_a_config_error_or_means_never(tmp_path: Path) -> None:
    try:
        c = load(env={}, default_ttl="inf")
    except ConfigError:
        return
    assert c.default_ttl is None
    with Store.open(tmp_path / "d", background=False, default_ttl="inf") as s:
        s.put("a", "1")


def test_an_error_logged_with_its_exception_shows_the_traceback_on_the_lines_after() -> None:
    import structlog

    from eventkv.logging import _render

    chain = structlog.get_config()["processors"]  # as configure() sets it (not reconfigured here)
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        event: Any = {"event": "background work failed", "component": "Test", "n": 1, "exc_info": True}
        for processor in chain:
            event = processor(None, "error", event)
    first, *trace = event.splitlines()
    assert first.endswith("[Test]\terror:background work failed n=1")
    assert trace[0] == "Traceback (most recent call last):" and trace[-1].startswith("ZeroDivisionError")
    assert _render(None, "info", {"event": "after", "component": "Test", "a": "b c"}).endswith(
        "[Test]\tlog:after a='b c'")


def test_ctrl_c_while_the_command_starts_ends_it_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing a subcommand's modules is most of a start-up: a Ctrl-C then printed a traceback."""
    from eventkv import cli

    def interrupted(wanted: str | None = None) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["serve", "--port", "0"]) == 130
