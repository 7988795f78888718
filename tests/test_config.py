"""The config loader: errors name file, line and key; env overrides; secrets only from the env."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailagent import config
from mailagent.config import ConfigError

GOOD = """\
[database]
url = "sqlite:///data/mailagent.db"

[mailboxes.support]
address = "Support@Example.com"

[mailboxes.support.imap]
host = "imap.example.com"
user = "support@example.com"
password_env = "SUPPORT_IMAP_PASSWORD"
after_ingest = "move"
move_to = "Processed"

[mailboxes.support.smtp]
host = "smtp.example.com"
user = "support@example.com"
password_env = "SUPPORT_SMTP_PASSWORD"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def _error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        config.load(path, environ=environ or {})
    return str(exc.value)


def test_a_good_file_loads_with_defaults_and_resolved_paths(tmp_path: Path) -> None:
    settings = config.load(_write(tmp_path, GOOD), environ={})
    box = settings.mailbox("support")
    assert box.address == "support@example.com"
    assert box.imap.port == 993 and box.imap.security == "ssl" and box.imap.folder == "INBOX"
    assert box.smtp.port == 587 and box.smtp.security == "starttls"
    assert settings.database.url == f"sqlite:///{tmp_path}/data/mailagent.db"
    assert "support@example.com" in settings.own_addresses


def test_the_shipped_config_file_is_valid() -> None:
    shipped = Path(__file__).resolve().parents[1] / "config.toml"
    settings = config.load(shipped, environ={})
    assert settings.database.url.startswith("sqlite:///")


def test_embedded_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = config.load(None, environ={})
    assert settings.source == "(embedded defaults)" and settings.broker.url == "memory://"


def test_wrong_type_names_file_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('host = "imap.example.com"', 'host = "imap.example.com"\nport = "nine"'))
    assert _error(path) == f"{path}:9: mailboxes.support.imap.port: input should be a valid integer, " \
                           "unable to parse string as an integer, got 'nine'"


def test_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("after_ingest", "afteringest"))
    assert f"{path}:11: mailboxes.support.imap.afteringest: unknown key" in _error(path)


def test_unknown_choice(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('after_ingest = "move"', 'after_ingest = "delete"'))
    assert _error(path) == (f"{path}:11: mailboxes.support.imap.after_ingest: input should be 'nothing', "
                            "'flag' or 'move', got 'delete'")


def test_missing_required_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('host = "smtp.example.com"\n', ""))
    assert _error(path) == f"{path}:14: mailboxes.support.smtp.host: required key is missing"


def test_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('folder', 'folder').replace('move_to = "Processed"', 'move_to = Processed'))
    assert _error(path).startswith(f"{path}:12: TOML syntax error: Invalid value")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("after_ingest", "afteringest").replace('url = "sqlite', 'urll = "sqlite'))
    message = _error(path)
    assert "database.urll: unknown key" in message and "afteringest: unknown key" in message


def test_inline_secrets_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('password_env = "SUPPORT_SMTP_PASSWORD"', 'password = "hunter2"'))
    message = _error(path)
    assert message.startswith(f"{path}:17: mailboxes.support.smtp.password: secrets are not allowed")
    assert "hunter2" not in message


def test_environment_overrides_scalars(tmp_path: Path) -> None:
    settings = config.load(_write(tmp_path, GOOD), environ={
        "MAILAGENT_DATABASE__URL": "postgresql+psycopg://db/mailagent",
        "MAILAGENT_MAILBOXES__SUPPORT__IMAP__PORT": "1993",
        "MAILAGENT_MAILBOXES__SUPPORT__IMAP__IDLE": "false",
        "MAILAGENT_BROKER__URL": "redis://127.0.0.1:6379/3",
    })
    assert settings.database.url == "postgresql+psycopg://db/mailagent"
    assert settings.mailbox("support").imap.port == 1993 and settings.mailbox("support").imap.idle is False
    assert settings.broker.url == "redis://127.0.0.1:6379/3"


def test_a_bad_environment_override_names_the_variable(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, GOOD), {"MAILAGENT_MAILBOXES__SUPPORT__IMAP__PORT": "x"})
    assert message.startswith("MAILAGENT_MAILBOXES__SUPPORT__IMAP__PORT: mailboxes.support.imap.port:")


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    assert config.load(None, environ={"MAILAGENT_CONFIG": str(path)}).source == str(path)


def test_secrets_are_read_at_use_and_missing_ones_are_named() -> None:
    assert config.secret("imap.password_env", "PW", environ={"PW": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="names PW, which is not set"):
        config.secret("imap.password_env", "PW", environ={})


def test_unknown_mailbox_is_a_clear_error(tmp_path: Path) -> None:
    settings = config.load(_write(tmp_path, GOOD), environ={})
    with pytest.raises(ConfigError, match="mailboxes.sales: no such mailbox"):
        settings.mailbox("sales")


def _article_links() -> list[str]:
    """Every link the bundled sample knowledge base writes, which the offline model quotes."""
    import re

    texts = [path.read_text() for path in sorted((config.DATA / "knowledge").glob("*.md"))]
    return sorted({url for text in texts for url in re.findall(r"https?://[^\s)>\]]+", text)})


@pytest.mark.parametrize("source", ["shipped config.toml", "embedded defaults", "demo config"])
def test_links_of_the_sample_knowledge_base_are_allowed(source: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A right answer quoting an article must not be held with `output:link_not_allowed`."""
    from mailagent.agent.guardrails import check_output
    from mailagent.cli.demo import CONFIG

    if source == "shipped config.toml":
        settings = config.load(Path(__file__).resolve().parents[1] / "config.toml", environ={})
    elif source == "embedded defaults":
        monkeypatch.chdir(tmp_path)
        settings = config.load(None, environ={})
        assert settings.source == "(embedded defaults)"
    else:
        text = CONFIG.format(cli="mailagent", dir=tmp_path, knowledge="k", policies="p", smtp_port=2525)
        settings = config.load(_write(tmp_path, text), environ={})
    links = _article_links()
    assert len(links) > 20
    reply = "Here is how:\n" + "\n".join(links)
    assert check_output(reply, allowed_domains=settings.agent.allowed_link_domains) == ()
