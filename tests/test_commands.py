"""The command layer (``eventkv.commands``): every seed command and every error, without a frontend."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventkv import Store
from eventkv.commands import (
    NO_OUTPUT,
    SEED,
    AliasBook,
    AliasFileError,
    Command,
    CommandError,
    CommandTable,
    Lines,
    Session,
    error_message,
    join,
    quote,
    render_text,
    split_script,
    tokenize,
)
from eventkv.commands.find import Query, find, parse_args, translate_glob

T0 = 1_750_000_000_000  # ms since the epoch


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def data_dir(tmp_path: Any) -> str:
    return str(tmp_path / "data")


@pytest.fixture
def store(data_dir: str, clock: Clock) -> Any:
    s = Store.open(data_dir, background=False, clock=clock)
    yield s
    s.close()


@pytest.fixture
def aliases(data_dir: str) -> AliasBook:
    return AliasBook.load(os.path.join(data_dir, "alias.json"))


@pytest.fixture
def session(store: Store, aliases: AliasBook) -> Session:
    return Session(store, aliases, local=True)


def run(session: Session, line: str) -> Any:
    return session.execute_line(line)


def error(session: Session, line: str) -> str:
    """The error ``line`` answers -- checked to have changed no data."""
    before_seq = session.store.last_seq
    before = sorted(session.store.items())
    with pytest.raises(CommandError) as info:
        session.execute_line(line)
    assert session.store.last_seq == before_seq
    assert sorted(session.store.items()) == before
    message = str(info.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize("line, words", [
    ('put greeting "hello world" 60', ["put", "greeting", "hello world", "60"]),
    ("put a 'single \"quoted\"'", ["put", "a", 'single "quoted"']),
    ('put a "say \\"hi\\" \\\\ \\n"', ["put", "a", 'say "hi" \\ \\n']),
    ("put a b\\ c", ["put", "a", "b c"]),
    ("put a x\"y z\"w", ["put", "a", "xy zw"]),
    ("put a ''", ["put", "a", ""]),
    ("put a $'line1\\nline2\\t\\x41\\u00e9'", ["put", "a", "line1\nline2\tAé"]),
    ("put a x;y", ["put", "a", "x;y"]),
    ("   ", []),
    ("put a \\", ["put", "a", "\\"]),
])
def test_tokenize_follows_shell_quoting(line: str, words: list[str]) -> None:
    assert tokenize(line) == words


@pytest.mark.parametrize("line", ['put a "open', "put a 'open", "put a $'open"])
def test_unbalanced_quotes_are_an_error(session: Session, line: str) -> None:
    assert error(session, line) == "ERR unbalanced quotes in request"


@given(st.lists(st.text(st.characters(blacklist_categories=()))))
def test_join_is_the_inverse_of_tokenize(words: list[str]) -> None:
    assert tokenize(join(words)) == words


def test_split_script() -> None:
    assert split_script("put a 1; put b 'x;y'\nget a;; ;\n") == [["put", "a", "1"], ["put", "b", "x;y"], ["get", "a"]]
    assert split_script('put a "multi\nline"') == [["put", "a", "multi\nline"]]
    assert split_script("") == []


def test_quote_keeps_simple_words_bare() -> None:
    assert quote("user:1*") == "user:1*"
    assert quote("a b") == "'a b'"
    assert quote("") == "''"


# --------------------------------------------------------------------- rendering and errors


def test_render_text_is_the_original_repr() -> None:
    assert render_text(["a", "b", "c"]) == "['a', 'b', 'c']"
    assert render_text([("z", "1"), ("2", "1")]) == "[('z', '1'), ('2', '1')]"
    assert render_text(False) == "False"
    assert render_text(None) == "None"
    assert render_text([None, None, "1", "1"]) == "[None, None, '1', '1']"
    assert render_text(NO_OUTPUT) is None
    assert render_text(Lines(["set: put", "v: values"])) == "set: put\nv: values"
    assert render_text(Lines()) is None


def test_command_error_is_one_line_with_a_prefix() -> None:
    e = CommandError("ERR first\nsecond")
    assert str(e) == "ERR first second"
    assert e.prefix == "ERR"


def test_a_bug_is_shown_as_one_line(store: Store) -> None:
    def broken(session: Session, args: list[str]) -> Any:
        raise ValueError("boom\nmore")

    session = Session(store, table=SEED.merged(CommandTable("bugs", [Command("broken", "fails", broken)])))
    with pytest.raises(ValueError) as info:
        session.execute(["broken"])
    assert error_message(info.value) == "ERR internal error: ValueError: boom more"
    assert error_message(CommandError("ERR x")) == "ERR x"


def test_store_errors_become_command_errors(store: Store) -> None:
    session = Session(store)
    store.close()
    with pytest.raises(CommandError) as info:
        session.execute(["put", "a", "1"])
    assert str(info.value).startswith("ERR ")


# --------------------------------------------------------------------- keys and values


def test_put_get_delete_exists(session: Session) -> None:
    assert run(session, "put a 1 10000") is NO_OUTPUT
    assert run(session, "get a") == "1"
    assert run(session, "exists a") is True
    assert run(session, "delete a") is NO_OUTPUT
    assert run(session, "exists a") is False
    assert run(session, "get a") is None
    assert run(session, "delete a") is NO_OUTPUT  # absent: nothing to do, no error


def test_listing_commands(session: Session) -> None:
    for line in ("put z 1 100", "put 2 1 100", "put b 2 100"):
        run(session, line)
    assert run(session, "keys") == ["z", "2", "b"]  # insertion order, as the original
    assert run(session, "values") == ["1", "1", "2"]
    assert run(session, "items") == [("z", "1"), ("2", "1"), ("b", "2")]
    assert run(session, "size") == 3
    assert run(session, "clear") is NO_OUTPUT
    assert run(session, "keys") == []
    assert run(session, "size") == 0


def test_put_without_ttl_uses_the_default_ttl(session: Session, clock: Clock) -> None:
    run(session, "put a 1")
    assert run(session, "ttl a") == 7
    clock.advance(6.9)
    assert run(session, "get a") == "1"
    clock.advance(0.2)
    assert run(session, "get a") is None


def test_ttl_zero_means_never(session: Session, clock: Clock) -> None:
    run(session, "put a 1 0")
    assert run(session, "ttl a") == -1
    clock.advance(10**6)
    assert run(session, "get a") == "1"


def test_expired_keys_are_invisible(session: Session, clock: Clock) -> None:
    run(session, "put a 1 5")
    run(session, "put b 2 50")
    clock.advance(10)
    assert run(session, "keys") == ["b"]
    assert run(session, "items") == [("b", "2")]
    assert run(session, "exists a") is False
    assert run(session, "size") == 1


def test_ttl_expire_persist(session: Session, clock: Clock) -> None:
    assert run(session, "ttl nope") == -2
    run(session, "put a 1 100")
    assert run(session, "ttl a") == 100
    assert run(session, "expire a 30") is True
    assert run(session, "ttl a") == 30
    assert run(session, "persist a") is True
    assert run(session, "ttl a") == -1
    assert run(session, "persist a") is False
    assert run(session, "expire nope 5") is False
    assert run(session, "expire a 0") is True  # 0 = never expires, as for put
    assert run(session, "ttl a") == -1
    run(session, "expire a 5")
    clock.advance(5)
    assert run(session, "get a") is None


def test_any_value_round_trips(session: Session) -> None:
    value = "semi;colon 'quote' \"dq\" \\ tab\t newline\n é \U0001f600"
    session.execute(["put", "k", value, "100"])
    assert run(session, "get k") == value
    run(session, f"put k2 {quote(value)} 100")
    assert run(session, "get k2") == value


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize("line, usage", [
    ("put a", "put <key> <value> [ttl_seconds]"),
    ("put a 1 2 3", "put <key> <value> [ttl_seconds]"),
    ("get", "get <key>"),
    ("get a b", "get <key>"),
    ("delete", "delete <key>"),
    ("exists", "exists <key>"),
    ("keys x", "keys"),
    ("values x", "values"),
    ("items x", "items"),
    ("size x", "size"),
    ("clear x", "clear"),
    ("ttl", "ttl <key>"),
    ("expire a", "expire <key> <seconds>"),
    ("persist", "persist <key>"),
    ("begin x", "begin"),
    ("commit x", "commit"),
    ("rollback x", "rollback"),
    ("select", "select <n>"),
    ("batch", 'batch [-c] "<cmd>; ..." | -f <file>'),
    ("batch -c", 'batch [-c] "<cmd>; ..." | -f <file>'),
    ("batch -f a b", 'batch [-c] "<cmd>; ..." | -f <file>'),
    ("find -k", "find -k|-v [-l|-r] <pattern>"),
    ("alias k", "alias <name> <command> [arg ...]"),
    ("show-alias x", "show-alias"),
    ("reset-alias x", "reset-alias"),
    ("help a b", "help [command]"),
    ("exit now", "exit"),
])
def test_wrong_number_of_arguments(session: Session, line: str, usage: str) -> None:
    name = line.split()[0]
    assert error(session, line) == f"ERR wrong number of arguments for '{name}' (usage: {usage})"


def test_unknown_command(session: Session) -> None:
    assert error(session, "gett a") == "ERR unknown command 'gett' (did you mean 'get'?)"
    assert error(session, "xyzzy") == "ERR unknown command 'xyzzy' (type 'help' for the list of commands)"
    assert error(session, "shwo-alias") == "ERR unknown command 'shwo-alias' (did you mean 'show-alias'?)"


def test_commands_are_case_insensitive(session: Session) -> None:
    session.execute(["PUT", "a", "1", "10"])
    assert session.execute(["Get", "a"]) == "1"


@pytest.mark.parametrize("ttl", ["x", "-1", "1.5", "+3", "１", ""])
def test_bad_ttl(session: Session, ttl: str) -> None:
    assert error(session, f"put a 1 {quote(ttl)}") == "ERR ttl must be a non-negative integer"


def test_ttl_out_of_range(session: Session) -> None:
    assert error(session, "put a 1 10000000000000") == "ERR ttl is out of range (at most 1000000000000 seconds)"
    run(session, "put a 1 10")
    assert error(session, "expire a soon") == "ERR seconds must be a non-negative integer"


def test_empty_command_through_execute(session: Session) -> None:
    with pytest.raises(CommandError, match="ERR empty command"):
        session.execute([])
    assert run(session, "") is NO_OUTPUT


# --------------------------------------------------------------------- transactions


def test_transaction_own_writes_visible_and_commit(store: Store, aliases: AliasBook) -> None:
    s1, s2 = Session(store, aliases), Session(store, aliases)
    run(s1, "put a 0 100")
    run(s1, "begin")
    run(s1, "put a 1 100")
    run(s1, "put b 2 100")
    run(s1, "delete a")
    assert run(s1, "get a") is None
    assert run(s1, "keys") == ["b"]
    assert run(s2, "get a") == "0"
    assert run(s2, "get b") is None
    seq = store.last_seq
    assert run(s1, "commit") is NO_OUTPUT
    assert store.last_seq == seq + 1  # one record
    assert run(s2, "items") == [("b", "2")]
    assert s1.tx is None


def test_rollback_discards(session: Session) -> None:
    run(session, "begin")
    run(session, "put a 1 100")
    assert run(session, "rollback") is NO_OUTPUT
    assert run(session, "get a") is None


def test_conflicting_commit_is_refused(store: Store, aliases: AliasBook) -> None:
    s1, s2 = Session(store, aliases), Session(store, aliases)
    run(s1, "put n 1 100")
    run(s1, "begin")
    assert run(s1, "get n") == "1"
    run(s2, "put n 5 100")
    run(s1, "put n 2 100")
    message = error(s1, "commit")
    assert message.startswith("ERR transaction refused")
    assert run(s2, "get n") == "5"
    assert s1.tx is None  # the refused transaction is over
    assert error(s1, "commit") == "ERR no transaction is open (start one with 'begin')"


def test_transaction_errors(session: Session) -> None:
    assert error(session, "commit") == "ERR no transaction is open (start one with 'begin')"
    assert error(session, "rollback") == "ERR no transaction is open (start one with 'begin')"
    run(session, "begin")
    assert error(session, "begin") == "ERR a transaction is already open (commit or rollback it first)"
    assert error(session, "select 1") == "ERR cannot select another database inside a transaction"
    run(session, "rollback")


def test_failed_command_inside_a_transaction_changes_nothing(session: Session) -> None:
    run(session, "begin")
    run(session, "put a 1 100")
    with pytest.raises(CommandError):
        run(session, "put b 2 never")
    assert run(session, "keys") == ["a"]
    run(session, "commit")
    assert run(session, "items") == [("a", "1")]


def test_exit_rolls_back_and_closes(session: Session) -> None:
    notices: list[str] = []
    session.notify = notices.append
    run(session, "begin")
    run(session, "put a 1 100")
    assert run(session, "exit") is NO_OUTPUT
    assert notices == ["The open transaction was rolled back"]
    assert session.closed
    assert session.tx is None
    assert session.store.get("a") is None


# --------------------------------------------------------------------- databases


def test_select(session: Session, store: Store) -> None:
    run(session, "put a 0 100")
    assert run(session, "select 2") is NO_OUTPUT
    assert session.db == 2
    assert run(session, "get a") is None
    run(session, "put a 2 100")
    assert store.db(2).get("a") == "2"
    assert store.get("a") == "0"
    assert error(session, "select 16") == "ERR DB index is out of range"
    assert error(session, "select -1") == "ERR DB index is out of range"
    assert error(session, "select two") == "ERR value is not an integer or out of range"
    run(session, "select 0")
    assert run(session, "get a") == "0"


def test_session_starts_in_a_database(store: Store) -> None:
    assert Session(store, db=3).db == 3
    with pytest.raises(CommandError, match="DB index is out of range"):
        Session(store, db=99)


# --------------------------------------------------------------------- aliases


def test_default_aliases(session: Session) -> None:
    run(session, "set a 1 100")
    assert run(session, "v") == ["1"]
    assert run(session, "show-alias") == ["set: put", "v: values"]


def test_alias_example_of_the_original(session: Session) -> None:
    run(session, "put z 1 100")
    run(session, "put 2 1 100")
    assert run(session, "alias k keys") is NO_OUTPUT
    assert run(session, "k") == ["z", "2"]
    run(session, "alias i items")
    assert run(session, "i") == [("z", "1"), ("2", "1")]
    assert render_text(run(session, "show-alias")) == "set: put\nv: values\nk: keys\ni: items"


def test_alias_with_arguments(session: Session) -> None:
    run(session, "put user ada 100")
    run(session, "alias gu get user")
    assert run(session, "gu") == "ada"
    run(session, "alias pu put user")
    run(session, "pu grace 100")
    assert run(session, "gu") == "grace"
    run(session, "alias greet put g 'hello world'")
    run(session, "greet")
    assert run(session, "get g") == "hello world"
    assert error(session, "gu extra") == "ERR wrong number of arguments for 'get' (usage: get <key>)"


def test_alias_of_an_alias(session: Session) -> None:
    run(session, "put a 1 100")
    run(session, "alias k keys")
    run(session, "alias kk k")
    assert run(session, "kk") == ["a"]


def test_alias_refusals(session: Session) -> None:
    assert error(session, "alias get keys") == "ERR cannot alias 'get': it is a built-in command"
    assert error(session, "alias PUT keys") == "ERR cannot alias 'put': it is a built-in command"
    assert error(session, "alias x x") == "ERR alias 'x' cannot point to itself"
    assert error(session, "alias x nothing") == (
        "ERR unknown command 'nothing' (an alias must name an existing command)")
    run(session, "alias a1 keys")
    run(session, "alias a2 a1")
    assert error(session, "alias a1 a2") == "ERR alias 'a1' forms a loop: a1 -> a2 -> a1"
    assert error(session, "alias '' keys").startswith("ERR invalid alias name")
    assert error(session, "alias 'a b' keys").startswith("ERR invalid alias name")
    assert error(session, "alias -x keys").startswith("ERR invalid alias name")
    assert run(session, "show-alias") == ["set: put", "v: values", "a1: keys", "a2: a1"]


def test_a_builtin_wins_over_an_alias_of_the_same_name(store: Store, data_dir: str) -> None:
    # An alias file edited by hand may name a built-in: the built-in runs.
    book = AliasBook(None, {"get": "keys"})
    session = Session(store, book)
    run(session, "put a 1 100")
    assert run(session, "get a") == "1"


def test_reset_alias(session: Session) -> None:
    run(session, "alias k keys")
    assert run(session, "reset-alias") is NO_OUTPUT
    assert run(session, "show-alias") == ["set: put", "v: values"]
    assert error(session, "k").startswith("ERR unknown command 'k'")


def test_aliases_are_saved_atomically_and_loaded(session: Session, data_dir: str) -> None:
    run(session, "alias k keys")
    run(session, "alias gu get 'user one'")
    path = os.path.join(data_dir, "alias.json")
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == {"set": "put", "v": "values", "k": "keys", "gu": "get 'user one'"}
    assert [n for n in os.listdir(data_dir) if n.endswith(".tmp")] == []
    again = AliasBook.load(path)
    assert again.items() == [("set", "put"), ("v", "values"), ("k", "keys"), ("gu", "get 'user one'")]
    run(session, "reset-alias")
    with open(path, encoding="utf-8") as f:
        assert json.load(f) == {"set": "put", "v": "values"}


def test_a_damaged_alias_file_stops_start_up_with_its_name(data_dir: str) -> None:
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, "alias.json")
    for content in ("{not json", '["a"]', '{"k": 3}'):
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        with pytest.raises(AliasFileError, match="alias.json"):
            AliasBook.load(path)


def test_an_alias_that_cannot_be_saved_is_not_made(store: Store, tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    session = Session(store, AliasBook(str(blocker / "alias.json")))  # its directory is a file
    with pytest.raises(CommandError, match="ERR cannot save the aliases"):
        run(session, "alias k keys")
    assert "k" not in session.aliases


# --------------------------------------------------------------------- batch


def test_batch_example_of_the_original(session: Session) -> None:
    notices: list[str] = []
    session.notify = notices.append
    result = run(session, 'batch -c "put a 1 10000; put b 1 10000; get a; get b;"')
    assert result == [None, None, "1", "1"]
    assert render_text(result) == "[None, None, '1', '1']"
    assert notices == ["Executing batch command not in transaction mode"]


def test_batch_is_one_record(session: Session, store: Store) -> None:
    seq = store.last_seq
    run(session, "batch --cmd 'put a 1 100; put b 2 100; delete a'")
    assert store.last_seq == seq + 1
    assert store.items() == [("b", "2")]


def test_batch_forms(session: Session, tmp_path: Any) -> None:
    assert run(session, "batch put a 1 100; get a") == [None, "1"]
    assert run(session, 'batch put a "hello world; still data" 100; get a') == [None, "hello world; still data"]
    assert run(session, "batch -c put b 2 100; get b") == [None, "2"]
    assert session.execute(["batch", "put", "c", "3", "100;", "get", "c"]) == [None, "3"]
    script = tmp_path / "script.txt"
    script.write_text("put f 1 100\nput g 'x;y' 100\n\n  \nget g\n", encoding="utf-8")
    assert run(session, f"batch -f {script}") == [None, None, "x;y"]
    assert run(session, f"batch --file {script}") == [None, None, "x;y"]
    assert run(session, "batch -c ';;'") == []


def test_batch_failure_applies_nothing(session: Session, store: Store) -> None:
    run(session, "put keep 1 100")
    message = error(session, "batch -c 'put a 1 100; delete keep; put b 2 soon; get a'")
    assert message == ("ERR batch command 3 of 4 (put b 2 soon) failed: ttl must be a non-negative integer; "
                       "the batch changed nothing")
    assert store.items() == [("keep", "1")]
    message = error(session, "batch -c 'put a 1; gett a'")
    assert message.startswith("ERR batch command 2 of 2 (gett a) failed: unknown command 'gett'")
    assert error(session, "batch -c 'put a 1 100; put a'").startswith("ERR batch command 2 of 2 (put a) failed: "
                                                                       "wrong number of arguments for 'put'")


@pytest.mark.parametrize("inner", ["begin", "commit", "rollback", "exit", "batch -c get a", "select 1",
                                   "alias k keys", "reset-alias"])
def test_batch_refuses_session_commands(session: Session, inner: str) -> None:
    name = inner.split()[0]
    message = error(session, f"batch -c 'put a 1 100; {inner}'")
    assert message == (f"ERR batch command 2 of 2 ({inner}) failed: '{name}' is not allowed inside a batch; "
                       f"the batch changed nothing")


def test_batch_inside_a_transaction_joins_it(store: Store, aliases: AliasBook) -> None:
    s1, s2 = Session(store, aliases), Session(store, aliases)
    notices: list[str] = []
    s1.notify = notices.append
    run(s1, "begin")
    run(s1, "put t 1 100")
    assert run(s1, "batch -c 'put u 2 100; get t; get u; keys; find -k -l *; find -v 2'") == [
        None, "1", "2", ["t", "u"], ["t", "u"], ["u"]]
    assert notices == []
    assert run(s2, "get u") is None  # not committed yet
    run(s1, "commit")
    assert run(s2, "items") == [("t", "1"), ("u", "2")]


def test_failed_batch_inside_a_transaction_leaves_it_as_it_was(session: Session) -> None:
    run(session, "begin")
    run(session, "put t 1 100")
    with pytest.raises(CommandError, match="batch command 3 of 3"):
        run(session, "batch -c 'put u 2 100; delete t; expire t never'")
    assert session.tx is not None
    assert run(session, "items") == [("t", "1")]
    run(session, "commit")
    assert session.store.items() == [("t", "1")]


def test_batch_in_a_transaction_sees_ttl_clear_persist(session: Session, clock: Clock) -> None:
    run(session, "put a 1 100")
    run(session, "begin")
    result = run(session, "batch -c 'ttl a; expire a 50; ttl a; persist a; ttl a; put b 2 10; size; clear; keys'")
    assert result == [100, True, 50, True, -1, None, 2, None, []]
    run(session, "commit")
    assert session.store.items() == []


def test_batch_file_errors(store: Store, tmp_path: Any) -> None:
    session = Session(store, local=True)
    missing = tmp_path / "missing.txt"
    assert error(session, f"batch -f {missing}") == f"ERR cannot read batch file '{missing}': No such file or directory"
    remote = Session(store)
    assert error(remote, f"batch -f {missing}").startswith("ERR batch -f reads files of the machine")


def test_batch_through_an_alias_keeps_quoting(session: Session) -> None:
    run(session, "alias b batch")
    assert run(session, 'b put a "x y" 100; get a') == [None, "x y"]
    run(session, "alias bc batch -c")
    assert run(session, "bc put a 'p q' 100; get a") == [None, "p q"]


# --------------------------------------------------------------------- find


@pytest.fixture
def filled(session: Session) -> Session:
    for key, value in [("a", "1"), ("b", "2"), ("c", "1"), ("user:1", "ada"), ("user:10", "bob"),
                       ("user:2", "ada"), ("user:x", "eve"), ("*star", "1"), ("line\nbreak", "multi\nline")]:
        session.execute(["put", key, value, "100"])
    return session


def test_find_example_of_the_original(session: Session) -> None:
    for line in ("put a 1 10000", "put b 2 10000", "put c 1 10000"):
        run(session, line)
    assert run(session, "items") == [("a", "1"), ("b", "2"), ("c", "1")]
    assert run(session, "find -k a") == ["a"]
    assert run(session, "find -k -l *") == ["a", "b", "c"]


@pytest.mark.parametrize("line, keys", [
    ("find -k a", ["a"]),
    ("find -k nope", []),
    ("find --key user:1", ["user:1"]),
    ("find -k -l user:*", ["user:1", "user:10", "user:2", "user:x"]),
    ("find -k -l user:?", ["user:1", "user:2", "user:x"]),
    ("find -kl user:1?", ["user:10"]),
    ("find -k -l user:[12]", ["user:1", "user:2"]),
    ("find -k -l user:[!12]", ["user:x"]),
    ("find -k -l user:[^0-9]", ["user:x"]),
    ("find -k -l user:[0-9]*", ["user:1", "user:10", "user:2"]),
    ("find -k -l user:[9-0]", ["user:1", "user:2"]),
    ("find -k -l '\\*star'", ["*star"]),
    ("find -k -l '\\**'", ["*star"]),
    ("find -k -l *:1*", ["user:1", "user:10"]),
    ("find -k -l 'line?break'", ["line\nbreak"]),
    ("find -k -l 'line*'", ["line\nbreak"]),
    ("find --key --like x*", []),
    ("find -k -r ^user:[0-9]+$", ["user:1", "user:10", "user:2"]),
    ("find -k -r 1", ["user:1", "user:10"]),
    ("find --key --regex '^[ab]'", ["a", "b"]),
    ("find -v 1", ["*star", "a", "c"]),
    ("find --value ada", ["user:1", "user:2"]),
    ("find -v -l a*", ["user:1", "user:2"]),
    ("find -v -l '?'", ["*star", "a", "b", "c"]),
    ("find -v -l 'multi*'", ["line\nbreak"]),
    ("find -v -r '^(ada|eve)$'", ["user:1", "user:2", "user:x"]),
    ("find -v -r 'multi.line'", []),  # '.' does not match a newline in a regex (as Python's re)
    ("find -v -l 'multi?line'", ["line\nbreak"]),
])
def test_find(filled: Session, line: str, keys: list[str]) -> None:
    assert run(filled, line) == keys


def test_find_options(filled: Session) -> None:
    run(filled, "put -1 neg 100")
    assert run(filled, "find -k -- -1") == ["-1"]
    assert run(filled, "find -k -1") == ["-1"]  # not an option: the pattern
    assert run(filled, "find -v -l -- neg") == ["-1"]
    assert error(filled, "find a") == "ERR wrong number of arguments for 'find' (usage: find -k|-v [-l|-r] <pattern>)"
    assert error(filled, "find -l a*") == (
        "ERR find needs -k (search keys) or -v (search values) (usage: find -k|-v [-l|-r] <pattern>)")
    assert error(filled, "find -k -v a") == "ERR find takes only one of -k (keys) or -v (values)"
    assert error(filled, "find -k -l -r a") == "ERR find takes only one of -l (glob) or -r (regex)"
    assert error(filled, "find --keys a").startswith("ERR unknown option '--keys' for 'find'")
    assert error(filled, "find -k a b").startswith("ERR wrong number of arguments for 'find'")


def test_find_bad_patterns(filled: Session) -> None:
    assert error(filled, "find -k -l user:[ab").startswith("ERR invalid glob: '[' without its closing ']'")
    message = error(filled, r"find -k -r '(a)\1'")
    assert message.startswith("ERR invalid regular expression: invalid escape sequence")
    assert "RE2 syntax" in message
    assert error(filled, "find -v -r '(?=a)'").startswith("ERR invalid regular expression: invalid perl operator")
    assert error(filled, "find -k -r '('").startswith("ERR invalid regular expression: missing )")


def test_find_is_linear_on_a_hostile_pattern(session: Session) -> None:
    session.execute(["put", "a" * 5000, "1", "100"])
    assert run(session, "find -k -r '(a+)+$'") == ["a" * 5000]
    assert run(session, "find -k -l '" + "*a" * 50 + "b'") == []


def test_find_excludes_expired_keys(session: Session, clock: Clock) -> None:
    run(session, "put user:1 a 5")
    run(session, "put user:2 a 50")
    clock.advance(10)
    assert run(session, "find -k -l user:*") == ["user:2"]
    assert run(session, "find -k user:1") == []
    assert run(session, "find -v a") == ["user:2"]
    assert run(session, "find -k -r user") == ["user:2"]


def test_find_sees_the_open_transaction(session: Session) -> None:
    run(session, "put a 1 100")
    run(session, "begin")
    run(session, "put b 1 100")
    run(session, "delete a")
    assert run(session, "find -v 1") == ["b"]
    assert run(session, "find -k -l *") == ["b"]
    run(session, "rollback")


def test_find_matches_undecodable_bytes_as_one_character(session: Session) -> None:
    key = b"k\xff\xfe".decode("utf-8", "surrogateescape")
    session.execute(["put", key, "v", "100"])
    assert run(session, "find -k -l k??") == [key]
    assert run(session, "find -k -r '^k..$'") == [key]
    assert session.execute(["find", "-k", "-l", key]) == [key]


class _IndexedTarget:
    """A target with the proposed ``keys_with_prefix``; a full scan would fail."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = sorted(keys)
        self.asked: list[str] = []

    def keys_with_prefix(self, prefix: str) -> list[str]:
        self.asked.append(prefix)
        return [k for k in self._keys if k.startswith(prefix)]

    def keys(self) -> list[str]:
        raise AssertionError("a glob with a literal prefix must not scan every key")


def test_a_literal_prefix_glob_uses_the_key_index() -> None:
    target = _IndexedTarget(["user:1", "user:12", "user:2", "x"])
    assert find(target, Query("key", "glob", "user:1*")) == ["user:1", "user:12"]
    assert find(target, Query("key", "glob", "user:1?")) == ["user:12"]
    assert target.asked == ["user:1", "user:1"]


def test_translate_glob() -> None:
    g = translate_glob("user:42*")
    assert (g.prefix, g.literal, g.prefix_only) == ("user:42", False, True)
    g = translate_glob("a\\*b")
    assert (g.prefix, g.literal) == ("a*b", True)
    g = translate_glob("user:1?*")
    assert (g.prefix, g.prefix_only) == ("user:1", False)
    assert parse_args(["-kl", "x"]) == Query("key", "glob", "x")


# --------------------------------------------------------------------- help, tables, logging


def test_help_lists_every_command(session: Session) -> None:
    lines = run(session, "help")
    assert isinstance(lines, Lines)
    assert len(lines) == len(SEED)
    for command, line in zip(SEED, lines, strict=True):
        assert line.startswith(command.usage)
        assert line.endswith(command.help)
    names = {c.name for c in SEED}
    assert {"put", "get", "delete", "clear", "exists", "keys", "values", "items", "size", "begin", "commit",
            "rollback", "help", "exit", "alias", "show-alias", "reset-alias", "batch", "find", "ttl", "expire",
            "persist", "select"} <= names


def test_help_for_one_command(session: Session) -> None:
    assert run(session, "help put") == [
        "put <key> <value> [ttl_seconds]  "
        "store value under key; it expires after ttl_seconds (default: the configured TTL; 0 = never)"]
    assert run(session, "help set")[0] == "set: alias for 'put'"
    assert error(session, "help gett") == "ERR unknown command 'gett' (did you mean 'get'?)"


def test_arity_comes_from_the_usage() -> None:
    def noop(session: Session, args: list[str]) -> Any:
        return None

    assert (Command("a <x> [y]", "", noop).min_args, Command("a <x> [y]", "", noop).max_args) == (1, 2)
    assert Command("a <x> [y ...]", "", noop).max_args is None
    assert Command("a", "", noop).max_args == 0
    assert Command("b <k>", "", noop, tx_control=True).no_batch


def test_another_dialect_registers_its_own_table(store: Store) -> None:
    def ping(session: Session, args: list[str]) -> Any:
        return "PONG" if not args else args[0]

    extra = CommandTable("extra", [Command("ping [message]", "answer PONG", ping)])
    session = Session(store, table=SEED.merged(extra))
    assert session.execute(["PING"]) == "PONG"
    assert session.execute(["ping", "hi"]) == "hi"
    assert session.execute(["put", "a", "1", "10"]) is NO_OUTPUT
    assert any(line.startswith("ping [message] ") and line.endswith("answer PONG")
               for line in session.execute(["help"]))
    with pytest.raises(ValueError):
        extra.add(Command("ping", "again", ping))


def test_commands_are_logged(store: Store) -> None:
    class Log:
        def __init__(self) -> None:
            self.lines: list[tuple[str, str]] = []

        def record(self, command: str, duration: float, status: str) -> None:
            self.lines.append((command, status))

    log = Log()
    session = Session(store, command_log=log)
    run(session, "put a 'x y' 10")
    with pytest.raises(CommandError):
        session.execute(["gett"])
    assert log.lines == [("put a 'x y' 10", "OK"), ("gett", "ERR")]


# --------------------------------------------------------------------- save and backup


def test_save_and_backup(session: Session, store: Store, tmp_path: Any) -> None:
    run(session, "put a 1 0")
    assert run(session, "save") == [f"snapshot written at record {store.last_seq}"]
    target = tmp_path / "copy"
    assert run(session, f"backup {target}") == [f"backup of record {store.last_seq} written to {target}"]
    with Store.open(target, background=False) as copy:
        assert copy.get("a") == "1"
    assert "not empty" in error(session, f"backup {target}")
    run(session, "begin")
    assert error(session, "save") == "ERR 'save' is not allowed inside a transaction"
    run(session, "rollback")


def test_backup_is_refused_to_network_clients(store: Store, aliases: AliasBook, tmp_path: Any) -> None:
    remote = Session(store, aliases, local=False)
    assert "only allowed in the local REPL" in error(remote, f"backup {tmp_path / 'x'}")
    assert not (tmp_path / "x").exists()
