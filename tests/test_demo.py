"""`mailagent demo`, the README's first command, end to end: then a rep approves the held refund
from the command line, which runs it once and shows the confirming reply, which the rep sends."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from mailagent.cli.common import command_line
from mailagent.store import db
from mailagent.store.models import DemoOrder, Draft

from .support.dovecot import free_port
from .support.smtpd import SmtpServer


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailagent", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def test_demo_then_approving_the_held_refund_runs_it_once_and_replies(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.run([sys.executable, "-m", "mailagent", "demo", "--dir", str(tmp_path / "demo"),
                           "--smtp-port", str(port)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    # Nothing logged: two worker pools on one broker made dramatiq warn of a middleware "of the
    # same type twice" (each dramatiq.Worker registered its own); both pools still do their work:
    # drafting (below) and delivery to the local SMTP server.
    assert demo.stderr == ""
    out = demo.stdout
    assert int(re.search(r"^(\d+) replies delivered to the local SMTP server", out, re.MULTILINE)[1]) > 0, out
    # 08 (adding seats) and its sender's out-of-office share a conversation: the question gets its draft.
    assert "Received 34 messages: 28 turns from customers, 4 automated" in out and "[5/5] done" in out, out
    for section in ("AUTO-SENT", "WAITING", "HELD", "ESCALATED", "IGNORED (4)"):
        assert section in out
    assert "incident_status" in out and "lookup_order" in out          # lookups from the demo backend
    config = tmp_path / "demo" / "config.toml"
    url = f"sqlite:///{tmp_path / 'demo' / 'mailagent.db'}"

    sent = [d for d in json.loads(_cli(config, "drafts", "list", "--json").stdout) if d["state"] == "sent"]
    assert sent and all(d["decision"] == "send" for d in sent)
    with db.reading(url) as s:
        # The outage mail asks two things: the incident lookup answers the first; the offline model
        # has no answer to the second, so the draft is held and says which question is missing.
        outage = s.exec(select(Draft).where(Draft.intent == "outage")).one()
        assert "Sync failures" in outage.text and "status.nimbusnotes.example" in outage.text
        assert outage.state == "held" and "question 2 “Should I be worried" in outage.needs_human_reason
        # The change-of-email mail mentions a provider "shutting down": no incident notice for it.
        [email] = [d for d in s.exec(select(Draft)) if "change-account-email.en" in d.cited]
        assert "Sync failures" not in email.text and "Settings → Account → Email address" in email.text

    actions = json.loads(_cli(config, "actions", "list", "--json").stdout)
    refund = next(a for a in actions if a["tool"] == "issue_refund" and a["arguments"]["order_id"] == "NN-1017")
    assert refund["state"] == "proposed" and refund["arguments"]["amount"] == "8.00"

    smtp = SmtpServer(port).start()
    try:
        approved = subprocess.run([sys.executable, "-m", "mailagent", "--config", "demo/config.toml", "actions",
                                   "approve", str(refund["id"]), "--as", "ana@nimbus"],
                                  capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert approved.returncode == 0, approved.stderr
        again = _cli(config, "actions", "approve", str(refund["id"]), "--as", "ana@nimbus")
        # The reply that confirms it is shown to the rep who approved, and waits for them.
        assert "refunded 8.00 EUR for order NN-1017" in approved.stdout and smtp.received == []
        # The command to send it is printed as the rep must run it (the entry point, the config
        # they named relative to their folder, made absolute), and it works as printed elsewhere.
        [send] = [line.removeprefix("Send it: ").partition("   (")[0] for line in approved.stdout.splitlines()
                  if line.startswith("Send it: ")]
        assert send == f"{command_line(config)} drafts approve {refund['draft_id']}", approved.stdout
        sent = subprocess.run([*shlex.split(send), "--as", "ana@nimbus"], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path / "demo")
        assert sent.returncode == 0, sent.stderr
    finally:
        smtp.stop()
    assert again.returncode == 1 and "only proposed actions can be decided" in again.stderr
    [reply] = smtp.received
    assert reply.recipients == ["pieter@devries-consultancy.example"]
    assert b"refunded 8.00 EUR for order NN-1017" in reply.data.replace(b"=\r\n", b"")
    with db.reading(url) as s:
        assert s.get(DemoOrder, "NN-1017").refunded == 8.0
    [executed] = [a for a in json.loads(_cli(config, "actions", "list", "--json").stdout) if a["id"] == refund["id"]]
    assert executed["state"] == "executed" and executed["decided_by"] == "ana@nimbus"
    events = [e["event"] for e in json.loads(_cli(config, "audit", "list", "--json").stdout)
              if e["action_id"] == refund["id"]]
    assert events == ["proposed", "awaits_rep", "approved", "executed"]
    db.dispose()


README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> list[str]:
    """The shell block of the README's quick start, after the demo ("Then, for instance:")."""
    text = README.read_text()
    block = text.split("Then, for instance:\n\n```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_the_readme_quick_start_works_as_written_on_the_demo(tmp_path: Path) -> None:
    """Each line of the README's block, in order, on a fresh demo: `.venv/bin/` is this
    interpreter's environment, port 2525 a free one."""
    import shlex

    from .support.shell import Block

    port = free_port()
    demo = subprocess.run([sys.executable, "-m", "mailagent", "demo", "--smtp-port", str(port)],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False)
    assert demo.returncode == 0, demo.stderr
    lines = quick_start()
    assert lines[0].startswith('M=".venv/bin/mailagent --config mailagent-demo/config.toml"')
    here = shlex.quote(sys.executable)
    block = Block(tmp_path)
    block.env["M"] = f"{here} -m mailagent --config mailagent-demo/config.toml"
    try:
        for line in lines[1:]:
            line = line.replace(".venv/bin/python", here).replace("127.0.0.1:2525", f"127.0.0.1:{port}")
            code, out, err = block.run(line, wait_for_port=port)
            assert code == 0, (line, out, err)
    finally:
        printed = block.stop()
    outputs = {line: out for line, _, out, _ in block.ran}
    assert "rule 'unsure drafts are held'" in outputs['$M policy explain 2                    '
                                                   '# which rule decided draft 2, and why']
    assert "search_knowledge" in next(out for line, out in outputs.items() if line.startswith("$M traces show 2"))
    sent = next(out for line, out in outputs.items() if line.startswith("$M drafts list --state sent"))
    assert [row.split()[:4] for row in sent.splitlines() if row.split()[0] == "2"] == [["2", "2", "sent", "sent"]]
    mail = printed.replace(b"=\r\n", b"").replace(b"=\n", b"")
    assert b"refunded 8.00 EUR for order NN-1017" in mail                    # action 1, approved
    assert b"all invoices are under Settings > Billing > Invoices." in mail   # draft 2, edited
