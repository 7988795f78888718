"""The command surface: ingest (files, MTA pipe and its exit codes), lists, shows, JSON fields."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailagent import cli

from .support.mails import mail

MESSAGE_FIELDS = {"id", "message_id", "conversation_id", "mailbox", "source", "state", "kind", "kind_reason",
                  "parse_error", "sha256", "from", "from_name", "subject", "sent_at", "received_at",
                  "attachments", "duplicates"}
CONVERSATION_FIELDS = {"id", "mailbox", "customer", "customer_name", "subject", "state", "taken_by",
                       "messages", "replies", "created_at", "last_message_at"}


@pytest.fixture
def config_file(tmp_path: Path, sqlite_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{sqlite_url}"\n[mailboxes.support]\naddress = "support@example.com"\n')
    return path


def run(config_file: Path, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config_file), *args],
                          input=stdin, capture_output=True, timeout=60, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def _json(config_file: Path, *args: str) -> list[dict]:
    code, out, err = run(config_file, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_ingest_from_the_mta_pipe_then_run_lists_it(config_file: Path) -> None:
    code, _, err = run(config_file, "ingest", "-", stdin=mail(1, subject="Refund please"))
    assert code == 0 and "stored 1 new" in err
    assert run(config_file, "ingest", "-", stdin=mail(1, subject="Refund please"))[0] == 0   # redelivery
    assert run(config_file, "run", "--until-idle")[0] == 0
    [row] = _json(config_file, "messages", "list")
    assert MESSAGE_FIELDS <= set(row)
    assert row["kind"] == "normal" and row["subject"] == "Refund please" and row["duplicates"] == 1
    assert row["from"] == "alice@customer.example" and row["source"] == "pipe" and row["mailbox"] == "support"
    [conversation] = _json(config_file, "conversations", "list")
    assert CONVERSATION_FIELDS <= set(conversation)
    assert conversation["id"] == row["conversation_id"] and conversation["messages"] == 1


def test_show_raw_prints_the_stored_bytes_exactly(config_file: Path, tmp_path: Path) -> None:
    raw = mail(1) + b"\xe9\xff trailing bytes in no charset\r\n"
    (tmp_path / "one.eml").write_bytes(raw)
    assert run(config_file, "ingest", str(tmp_path / "one.eml"))[0] == 0
    proc = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config_file),
                           "messages", "show", "1", "--raw"], capture_output=True, check=False)
    assert proc.returncode == 0 and proc.stdout == raw
    import hashlib

    assert _json(config_file, "messages", "list")[0]["sha256"] == hashlib.sha256(raw).hexdigest()


def test_storage_down_tells_the_mta_to_retry(tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text('[database]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n')
    code, _, err = run(config_file, "ingest", "-", stdin=mail(1))
    assert code == 75 and "storage unavailable" in err and err.count("\n") == 1


def test_empty_input_and_missing_files_are_clear_errors(config_file: Path, tmp_path: Path) -> None:
    assert run(config_file, "ingest", "-", stdin=b"")[0] == 65
    (tmp_path / "one.eml").write_bytes(mail(1))
    code, _, err = run(config_file, "ingest", str(tmp_path / "one.eml"), str(tmp_path / "missing.eml"))
    assert code == 66 and "cannot read" in err and "missing.eml" in err and "stored 1 new" in err
    assert len(_json(config_file, "messages", "list")) == 1       # the readable one is stored


def test_one_bad_file_among_many_does_not_stop_the_others(config_file: Path, tmp_path: Path) -> None:
    paths = []
    for i in range(1, 26):
        path = tmp_path / f"{i:02}.eml"
        path.write_bytes(b"" if i == 7 else b"  \r\n" if i == 19 else mail(i))
        paths.append(str(path))
    unreadable = tmp_path / "locked.eml"
    unreadable.mkdir()                               # a directory: read_bytes fails like an unreadable file
    code, _, err = run(config_file, "ingest", *paths[:12], str(unreadable), *paths[12:])
    assert code == 66, err
    assert "07.eml: empty" in err and "19.eml: empty" in err and "cannot read" in err and "locked.eml" in err
    assert "stored 23 new message(s), 0 already stored, 3 file(s) skipped" in err
    assert len(_json(config_file, "messages", "list", "--limit", "100")) == 23
    code, _, err = run(config_file, "ingest", paths[0], paths[6])
    assert code == 65 and "stored 0 new message(s), 1 already stored, 1 file(s) skipped" in err


def test_malformed_mail_is_stored_and_listed(config_file: Path) -> None:
    junk = b"this is not\x00 an email at all \xff\xfe"
    assert run(config_file, "ingest", "-", stdin=junk)[0] == 0
    assert run(config_file, "run", "--until-idle")[0] == 0
    [row] = _json(config_file, "messages", "list")
    assert row["state"] == "processed" and row["conversation_id"] is not None
    code, out, _ = run(config_file, "messages", "show", str(row["id"]))
    assert code == 0 and "sha256" in out


def test_human_output_and_show_commands(config_file: Path, tmp_path: Path) -> None:
    for i, subject in enumerate(["Export my data", "Re: Export my data"], start=1):
        (tmp_path / f"{i}.eml").write_bytes(mail(i, subject=subject, in_reply_to="m1.alice@customer.example" if i == 2 else None))
    assert run(config_file, "ingest", str(tmp_path / "1.eml"), str(tmp_path / "2.eml"))[0] == 0
    assert run(config_file, "run", "--until-idle")[0] == 0
    code, out, _ = run(config_file, "messages", "list")
    assert code == 0 and "Export my data" in out and out.splitlines()[0].split()[:3] == ["ID", "RECEIVED_AT", "KIND"]
    code, out, _ = run(config_file, "conversations", "show", "1")
    assert code == 0 and out.count("<- message") == 2 and "Hello, this is message 2." in out


def test_unknown_ids_and_bad_config_are_clear(config_file: Path, tmp_path: Path) -> None:
    code, _, err = run(config_file, "messages", "show", "999")
    assert code == 1 and "no message with id 999" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[database]\nurll = 1\n")
    code, _, err = run(bad, "messages", "list")
    assert code == 78 and f"{bad}:2: database.urll: unknown key" in err


def test_db_upgrade_is_idempotent(config_file: Path) -> None:
    assert run(config_file, "db", "upgrade")[0] == 0
    code, out, _ = run(config_file, "db", "upgrade")
    assert code == 0 and "newest schema" in out


def test_worker_refuses_the_in_process_broker(config_file: Path) -> None:
    code, _, err = run(config_file, "worker")
    assert code == 78 and "needs a shared broker" in err


def test_main_in_process_reads_stdin(config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(mail(7))))
    assert cli.main(["--config", str(config_file), "ingest"]) == 0
    assert "stored 1 new" in capsys.readouterr().err


def test_kb_sync_and_search(config_file: Path) -> None:
    code, out, _ = run(config_file, "kb", "sync")
    assert code == 0 and "38 added" in out
    assert "0 added, 0 updated, 0 removed, 38 unchanged" in run(config_file, "kb", "sync")[1]
    hits = _json(config_file, "kb", "search", "Wo", "finde", "ich", "meine", "Rechnungen?", "--locale", "de")
    assert hits[0]["id"] == "download-invoices.de" and set(hits[0]) == {"id", "title", "locale", "score", "snippet"}


def test_policy_check_test_and_explain(config_file: Path, tmp_path: Path) -> None:
    code, out, _ = run(config_file, "policy", "check")
    assert code == 0 and "policy and fixtures are valid" in out
    code, out, _ = run(config_file, "policy", "test")
    assert code == 0 and " 0 failed" in out
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "10-bad.toml").write_text('[[rules]]\nname = "x"\nwhen = { intent = "password_reset" }\nthen = "sned"\n')
    code, out, _ = run(config_file, "policy", "check", str(broken))
    assert code == 1 and f"{broken / '10-bad.toml'}:4: rules[0].then:" in out
    (tmp_path / "q.eml").write_bytes(mail(1, subject="Password reset email never arrives",
                                          body="The password reset email never arrives. How do I reset my password?"))
    run(config_file, "kb", "sync")
    assert run(config_file, "ingest", str(tmp_path / "q.eml"))[0] == 0
    assert run(config_file, "run", "--until-idle")[0] == 0
    [draft] = _json(config_file, "drafts", "list")
    code, out, _ = run(config_file, "policy", "explain", str(draft["id"]))
    assert code == 0 and "Decided by:" in out and draft["rule"] in out and draft["decision"] in out


UNREACHABLE = {
    "closed port": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    "wrong database name": "postgresql+psycopg://postgres@127.0.0.1:5432/mailagent_no_such_database",
    "wrong user": "postgresql+psycopg://nosuchuser:secret@127.0.0.1:5432/postgres",
}
EVERY_KIND_OF_COMMAND = [("drafts", "list"), ("drafts", "show", "1"), ("conversations", "show", "1"),
                         ("run", "--until-idle"), ("policy", "explain", "1"), ("actions", "approve", "1"),
                         ("report",), ("db", "upgrade"), ("kb", "sync"), ("evals", "list")]


@pytest.mark.parametrize("problem", UNREACHABLE)
def test_a_database_that_cannot_be_used_is_one_line_and_exit_75(problem: str, tmp_path: Path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{UNREACHABLE[problem]}"\n')
    commands = EVERY_KIND_OF_COMMAND if problem == "closed port" else EVERY_KIND_OF_COMMAND[:3]
    for args in commands:
        code, out, err = run(config_file, *args)
        assert (code, out) == (75, ""), (args, err)
        assert err.startswith("mailagent: database unavailable (postgresql+psycopg://") and err.count("\n") == 1, err
        assert "secret" not in err                                           # the password is hidden


def test_a_reader_that_goes_away_early_stops_the_output_quietly(config_file: Path, tmp_path: Path) -> None:
    """`mailagent drafts show 1 | head -1`: the reader closes the pipe before we write."""
    (tmp_path / "q.eml").write_bytes(mail(1, subject="Export my data"))
    assert run(config_file, "ingest", str(tmp_path / "q.eml"))[0] == 0
    assert run(config_file, "run", "--until-idle")[0] == 0
    for args in (("drafts", "show", "1"), ("drafts", "list", "--json"), ("messages", "show", "1", "--raw")):
        proc = subprocess.Popen([sys.executable, "-m", "mailagent", "--config", str(config_file), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()                 # long before the command has its first line ready
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 141 and err == "", (args, err)


def test_a_bad_data_file_is_a_clear_error(config_file: Path) -> None:
    bad = config_file.with_name("bad.toml")
    bad.write_text(f'{config_file.read_text()}\n[knowledge]\ndirectory = "{config_file}"\n')   # a file, not a folder
    code, _, err = run(bad, "kb", "sync")
    assert (code, err) == (1, f"mailagent: {config_file}: not a directory\n")


def test_an_unexpected_error_is_one_line_and_exit_70_with_the_traceback_under_v(
        config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from mailagent.store import listings

    def broken(*_args: object, **_kw: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(listings, "drafts", broken)
    assert cli.main(["--config", str(config_file), "drafts", "list"]) == 70
    assert capsys.readouterr().err == ("mailagent: internal error: ZeroDivisionError: a bug "
                                       "(run with -v for the traceback)\n")
    with pytest.raises(ZeroDivisionError):
        cli.main(["--config", str(config_file), "-v", "drafts", "list"])



REFUSED = [["drafts", "approve", "999"], ["drafts", "reject", "999", "--reason", "no"], ["outbox", "retry", "999"],
           ["outbox", "resolve", "999", "--delivered"], ["actions", "approve", "999"],
           ["actions", "reject", "999", "--reason", "no"], ["conversations", "take", "999"],
           ["evals", "flag", "999", "--note", "n"], ["evals", "accept", "999"], ["evals", "tag", "999", "--add", "t"],
           ["kb", "suggestions", "accept", "999"], ["users", "disable", "nobody"]]


@pytest.mark.parametrize("args", REFUSED, ids=[" ".join(a[:2]) for a in REFUSED])
def test_a_refusal_of_the_layer_below_is_one_line_and_exit_1(config_file: Path, args: list[str],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--config", str(config_file), *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mailagent: ") and err.count("\n") == 1 and "internal error" not in err, err


def test_a_file_named_on_the_command_line_that_cannot_be_read_is_exit_66(config_file: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.txt")
    for args in (["drafts", "approve", "1", "--edit", missing], ["evals", "flag", "1", "--note", "n", "--reference", missing]):
        assert cli.main(["--config", str(config_file), *args]) == 66
        assert capsys.readouterr().err.startswith(f"mailagent: cannot read {missing}: ")


def test_fail_on_turns_only_the_named_errors_into_a_fail_with_their_code() -> None:
    from mailagent.cli.common import Fail, fail_on

    with pytest.raises(Fail) as caught, fail_on(KeyError, ValueError, code=65):
        raise ValueError("a clear refusal")
    assert (str(caught.value), caught.value.code, caught.value.__suppress_context__) == ("a clear refusal", 65, True)
    with pytest.raises(ZeroDivisionError), fail_on(ValueError):
        raise ZeroDivisionError("a bug stays a bug")


def _every_argument(p: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, str, str | None]]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                yield f"{path} {name}", "(the command)", helps.get(name)
                yield from _every_argument(subparser, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, "/".join(action.option_strings) or action.dest, action.help


def test_every_command_option_and_argument_has_help_text() -> None:
    from mailagent.cli.main import parser

    arguments = list(_every_argument(parser(), "mailagent"))
    assert len(arguments) > 150
    assert [(path, name) for path, name, text in arguments if not (text or "").strip()] == []
    limits = [text for _, name, text in arguments if name == "--limit"]
    assert limits and all("default" in (text or "") for text in limits)          # the cap is stated
    assert {text for _, name, text in arguments if name == "--as"} == {
        "who is acting, for the audit log (default: $MAILAGENT_REVIEWER, else $USER@cli)"}


def test_a_list_cut_by_limit_says_so(config_file: Path, tmp_path: Path) -> None:
    for i in range(1, 5):
        (tmp_path / f"{i}.eml").write_bytes(mail(i, subject=f"Question {i}"))
    assert run(config_file, "ingest", *(str(tmp_path / f"{i}.eml") for i in range(1, 5)))[0] == 0
    code, out, err = run(config_file, "messages", "list", "--limit", "3", "--json")
    assert code == 0 and [row["id"] for row in json.loads(out)] == [2, 3, 4]
    assert err == "(the newest 3 shown, more exist: --limit N shows more)\n"
    code, out, err = run(config_file, "messages", "list", "--limit", "4")
    assert code == 0 and len(out.splitlines()) == 1 + 4 and err == ""


def test_drafts_show_how_far_the_reply_got(tmp_path: Path, sqlite_url: str) -> None:
    """A draft approved (state `sent`) whose reply the SMTP server never took shows `queued` with
    the error, in `drafts list`, its JSON and `drafts show`: `sent` alone would hide it."""
    from .support.dovecot import free_port

    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{sqlite_url}"\n[mailboxes.support]\naddress = "support@example.com"\n'
                           f'[mailboxes.support.smtp]\nhost = "127.0.0.1"\nport = {free_port()}\nsecurity = "none"\n')
    (tmp_path / "q.eml").write_bytes(mail(1, subject="Export my data"))
    assert run(config_file, "ingest", str(tmp_path / "q.eml"))[0] == 0
    assert run(config_file, "run", "--until-idle")[0] == 0
    [draft] = _json(config_file, "drafts", "list")
    assert draft["state"] == "held" and draft["delivery"] is None and draft["delivery_error"] is None
    code, out, err = run(config_file, "drafts", "approve", str(draft["id"]), "--as", "ana@example")
    assert code == 0, err
    [draft] = _json(config_file, "drafts", "list", "--state", "sent")
    assert draft["delivery"] == "queued" and "Connect" in draft["delivery_error"]
    code, out, _ = run(config_file, "drafts", "list")
    assert out.splitlines()[0].split()[2:4] == ["STATE", "DELIVERY"] and out.splitlines()[1].split()[2:4] == ["sent", "queued"]
    code, out, _ = run(config_file, "drafts", "show", str(draft["id"]))
    assert "delivery           queued" in out and "delivery_error" in out


def test_every_documented_state_is_accepted_by_list_filters() -> None:
    import re

    from mailagent.cli.main import parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for noun in ("draft", "action"):
        documented = re.search(rf"- \*\*{noun}\*\*:.*?`state`\s*\(([^)]*)\)", readme, re.DOTALL)
        assert documented, noun
        states = re.findall(r"[a-z_]+", documented.group(1))
        assert len(states) >= 5
        for state in states:
            args = parser().parse_args([f"{noun}s", "list", "--state", state])
            assert args.state == state


def test_an_older_database_is_upgraded_only_by_db_upgrade(tmp_path: Path) -> None:
    """`run` (and every other command) refuses a database at an older schema and changes nothing;
    `db upgrade` is the one way forward, as the README says."""
    from alembic import command

    from mailagent.store import db, schema

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(schema.alembic_config(url), "0011")
    db.dispose(url)
    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{url}"\n')
    for args, expected in ((("run", "--until-idle"), 1), (("drafts", "list"), 1), (("ingest", "-"), 75)):
        code, _, err = run(config_file, *args, stdin=mail(1))
        assert code == expected and err == (f"mailagent: the database {url} is at schema 0011, this version "
                                            f"needs {schema.head()}: run `mailagent db upgrade`\n"), (args, err)
    assert schema.current(url) == "0011"
    assert run(config_file, "db", "upgrade")[0] == 0 and schema.current(url) == schema.head()
    assert run(config_file, "run", "--until-idle")[0] == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database nobody has used: no schema at all."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'new' / 'mailagent.db'}"
    return request.getfixturevalue("fresh_pg")


def test_four_mta_deliveries_at_once_on_a_new_database_all_succeed(fresh_database: str, tmp_path: Path) -> None:
    """Postfix delivers four messages at once to a database nobody has used yet: one process
    creates the schema, the others wait for it; every one exits 0 and stores its message."""
    from mailagent.store import db, schema

    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[database]\nurl = "{fresh_database}"\n[mailboxes.support]\naddress = "support@example.com"\n')
    procs = [subprocess.Popen([sys.executable, "-m", "mailagent", "--config", str(config_file), "ingest", "-"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    for n, proc in enumerate(procs, start=1):       # all four are started before any gets its mail
        assert proc.stdin is not None
        proc.stdin.write(mail(n))
        proc.stdin.close()
    results = [(proc.wait(timeout=120), proc.stderr.read().decode()) for proc in procs if proc.stderr]
    assert results == [(0, "stored 1 new message(s), 0 already stored\n")] * 4
    assert schema.current(fresh_database) == schema.head()
    with db.reading(fresh_database) as s:
        from sqlmodel import select

        from mailagent.store.models import Message

        assert sorted(m.message_id for m in s.exec(select(Message)).all()) == [
            f"m{n}.alice@customer.example" for n in range(1, 5)]


def test_non_mail_input_is_stored_and_surfaced_never_drafted(config_file: Path, tmp_path: Path) -> None:
    """An ELF binary and random bytes piped or filed as mail: stored byte for byte, shown to a
    person with the reason, no model run, no reply; nothing binary reaches the terminal."""
    import random
    import re

    elf = Path("/bin/true").read_bytes()
    noise = random.Random(8).randbytes(3000)
    hostile = mail(3, subject="Invoice \x1b[2J\x1b[31mPAY NOW\u202e", body="Hi \x1b]0;pwned\x07 there\x00\n")
    for name, raw in (("elf", elf), ("noise", noise), ("hostile.eml", hostile)):
        (tmp_path / name).write_bytes(raw)
    assert run(config_file, "ingest", *(str(tmp_path / n) for n in ("elf", "noise", "hostile.eml")))[0] == 0
    assert run(config_file, "run", "--until-idle")[0] == 0
    messages = {m["id"]: m for m in _json(config_file, "messages", "list")}
    assert messages[1]["parse_error"] == "ParseError: an ELF executable, not a mail message"
    assert messages[2]["parse_error"].startswith("ParseError: ") and messages[2]["parse_error"].endswith(
        "not a mail message")
    assert messages[3]["parse_error"] is None
    drafts = {d["message_id"]: d for d in _json(config_file, "drafts", "list")}
    for ident in (1, 2):
        draft = drafts[ident]
        assert draft["state"] == "held" and not draft["model"] and not draft["trace_id"]   # no model ran
        assert draft["needs_human"] and draft["needs_human_reason"].startswith("not readable as mail: ParseError: ")
        assert "parse_error" in draft["flags"] and draft["outbound_id"] is None
    proc = subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config_file), "messages", "show", "1",
                           "--raw"], capture_output=True, check=False)
    assert proc.stdout == elf                                          # kept byte for byte
    unsafe = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffd]")
    for args in (("drafts", "show", str(drafts[1]["id"])), ("drafts", "show", str(drafts[2]["id"])),
                 ("drafts", "show", str(drafts[3]["id"])), ("conversations", "show", "1"),
                 ("conversations", "show", "2"), ("conversations", "show", "3"), ("messages", "show", "3"),
                 ("messages", "list"), ("drafts", "list"), ("conversations", "list")):
        code, out, _ = run(config_file, *args)
        assert code == 0 and not unsafe.search(out), (args, [c for c in unsafe.findall(out)][:5])
    code, out, _ = run(config_file, "drafts", "show", str(drafts[1]["id"]))
    assert "not readable as mail (ParseError: an ELF executable, not a mail message)" in out
    assert "messages show 1 --raw" in out
    code, out, _ = run(config_file, "messages", "show", "3")
    assert "\\x1b[31mPAY NOW\\u202e" in out and "Hi \\x1b]0;pwned\\x07 there" in out


def _commands_block() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Commands\n\n```\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.startswith("mailagent ")]


def _alternatives(line: str) -> list[str]:
    """`a [x | y] | b` -> [`a [x | y]`, `b`]: the bars outside brackets."""
    parts, depth, current = [], 0, ""
    for i, char in enumerate(line):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and depth == 0 and line[i - 1:i + 2] == " | ":
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def _documented() -> dict[tuple[str, ...], set[str]]:
    """Each command of the README's synopsis, with the options it names."""
    import re

    found: dict[tuple[str, ...], set[str]] = {}
    for line in _commands_block():
        line = re.split(r"\s{2,}", line.removeprefix("mailagent ").replace("[--config FILE] [-v] ", ""))[0]
        group: tuple[str, ...] = ()
        for n, alternative in enumerate(_alternatives(line)):
            words = tuple(re.match(r"((?:[a-z]+ ?)+)", alternative).group(1).split())  # type: ignore[union-attr]
            path = words if n == 0 or words[0] == (group or ("",))[0] else (*group, *words)
            if n == 0:
                group = path[:-1]
            found[path] = set(re.findall(r"--[a-z-]+", alternative))
    return found


def _leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], set[str]]]:
    subparsers = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, {o for a in p._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    for action in subparsers:
        for name, child in action.choices.items():
            yield from _leaves(child, (*path, name))


def test_the_readme_command_synopsis_is_the_parser() -> None:
    """Every command the README's Commands section lists exists with the options it names, and
    every command of the program is listed there."""
    from mailagent.cli.main import parser

    documented, actual = _documented(), dict(_leaves(parser()))
    assert len(documented) > 50
    assert sorted(set(documented) - set(actual)) == []            # documented but missing
    assert sorted(set(actual) - set(documented)) == []            # present but undocumented
    assert {path: sorted(options - actual[path]) for path, options in documented.items()
            if options - actual[path]} == {}


def test_printed_commands_name_the_config_as_an_absolute_path_only_when_one_was_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mailagent.cli.common import command_line

    monkeypatch.chdir(tmp_path)
    plain = command_line(None)
    assert "--config" not in plain and plain.endswith("mailagent")
    assert command_line("my configs/a.toml") == f"{plain} --config '{tmp_path}/my configs/a.toml'"
