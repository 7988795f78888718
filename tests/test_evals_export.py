"""Exports: the cases as JSONL, the OpenAI Evals shape (accepted by the `openai` client's own
types, and uploaded through the client to a local server speaking the Evals API), fine-tuning
data; the daily quality figures; `mailagent replay` beside the stored draft."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from openai.types import EvalCreateParams
from openai.types.evals import RunCreateParams

from mailagent.evals import export, quality
from mailagent.store import quality as readings
from mailagent.store.models import now

from .support.learning import answer, ask, config_file, desk, hold_all, mailagent, mailagent_json
from .support.openai_server import OpenAIServer, valid_params

KEY_ENV = "MAILAGENT_TEST_MODEL_KEY"
RESET = ("Password reset email never arrives", "I clicked forgot password but the reset email never arrives. "
                                               "My password: Hunter22x. Thanks, Bob Jones")
DARK_FINAL = ("Hi Bob,\n\nYes: Nimbus Notes has a dark theme. Open Settings → Appearance → Theme and choose Dark."
              "\n\nBest regards,\nAna")


@pytest.fixture
def exported(sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, object]:
    """Three accepted cases (approved, rep-written, rejected) and a config file."""
    settings = desk(sqlite_url, policy=hold_all(tmp_path))
    answer(settings, ask(settings, *RESET, sender="bob.jones@customer.example"))
    answer(settings, ask(settings, "Dark mode?", "Is there a dark mode?", sender="bob.jones@customer.example"), DARK_FINAL)
    from mailagent.review import drafts

    drafts.reject(settings, ask(settings, "Invoice", "Where is my May invoice?"), "ana@example", "look it up first")
    config = config_file(tmp_path, settings, f'[policy]\ndirectory = "{settings.policy.directory}"\n')
    assert mailagent(capsys, config, "evals", "build")[0] == 0
    assert mailagent(capsys, config, "evals", "accept", "1", "2", "3")[0] == 0
    return config, settings


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_jsonl_holds_every_case_of_the_set_redacted(exported: tuple[Path, object], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = exported
    code, out, _ = mailagent(capsys, config, "evals", "export", "--format", "jsonl", "--out", str(tmp_path / "c.jsonl"))
    assert code == 0 and "3 case(s)" in out
    rows = lines(tmp_path / "c.jsonl")
    assert [r["source"] for r in rows] == ["approved", "rep-written", "rejected"]
    assert rows[2]["reference"] is None and rows[2]["note"] == "look it up first"
    text = (tmp_path / "c.jsonl").read_text()
    assert "Hunter22x" not in text and "bob.jones@customer.example" not in text and "Bob Jones" not in text
    assert rows[0]["input"]["message"].startswith("I clicked forgot password")


def test_the_openai_export_is_accepted_by_the_clients_types_and_uploads(
        exported: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = exported
    out = tmp_path / "oa"
    code, printed, _ = mailagent(capsys, config, "evals", "export", "--format", "openai", "--out", str(out))
    assert code == 0 and "2 item(s), samples from the agent's drafts" in printed    # a rejection has no reference
    spec = json.loads((out / "eval.json").read_text())
    rows = lines(out / "data.jsonl")
    assert valid_params(EvalCreateParams, spec) == []
    assert valid_params(RunCreateParams, {"data_source": {"type": "jsonl", "source": {"type": "file_content",
                                                                                   "content": rows}}}) == []
    assert [c["type"] for c in spec["testing_criteria"]] == ["string_check", "text_similarity", "score_model"]
    assert set(rows[0]["item"]) == set(spec["data_source_config"]["item_schema"]["properties"])
    assert rows[1]["item"]["reference"] == DARK_FINAL.replace("Bob", "Customer")
    assert valid_params(EvalCreateParams, {**spec, "testing_criteria": [{"type": "string_check", "name": "x"}]})

    monkeypatch.setenv(KEY_ENV, "sk-loopback-only")
    with OpenAIServer() as server:
        (config.parent / "upload.toml").write_text(config.read_text() + f"""[model]
provider = "openai"
name = "gpt-judge"
base_url = "{server.base_url}"
api_key_env = "{KEY_ENV}"
""")
        code, printed, err = mailagent(capsys, config.parent / "upload.toml", "evals", "export", "--format", "openai",
                                       "--out", str(out), "--upload")
        [created] = server.evals.values()
        [run] = server.eval_runs.values()
    assert code == 0, err
    assert f"uploaded: eval {created['id']}, run {run['id']} (queued)" in printed
    assert "the openai client marks the Evals API deprecated" in printed
    assert created["testing_criteria"][2]["model"] == "gpt-judge" and run["result_counts"]["total"] == 2
    assert run["data_source"]["source"]["content"] == rows


def test_an_upload_the_server_refuses_is_a_clear_error(exported: tuple[Path, object], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    config, settings = exported
    code, _, err = mailagent(capsys, config, "evals", "export", "--format", "openai", "--out", str(tmp_path / "o"),
                             "--upload")
    assert code == 1 and "--upload needs [model] provider = \"openai\"" in err
    code, _, err = mailagent(capsys, config, "evals", "export", "--format", "jsonl", "--out", str(tmp_path / "j"),
                             "--upload")
    assert code == 1 and "--upload needs --format openai" in err
    monkeypatch.setenv(KEY_ENV, "sk-loopback-only")
    with OpenAIServer() as server:
        online = settings.model_copy(update={"model": settings.model.model_copy(update={  # type: ignore[attr-defined]
            "provider": "openai", "base_url": server.base_url, "api_key_env": KEY_ENV, "max_retries": 0})})
        written = export.export(online, "openai", tmp_path / "o")
        broken = replace(written, rows=({"item": {"case_id": 1, "subject": "x"}, "sample": {"output_text": "y"}},))
        with pytest.raises(export.ExportError, match="the upload failed: .*content\\[0\\].item: missing 'message'"):
            export.upload(online, broken)
        assert len(server.evals) == 1 and server.eval_runs == {}


def test_fine_tuning_rows_are_system_customer_turns_and_the_reps_final(exported: tuple[Path, object], tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = exported
    assert mailagent(capsys, config, "evals", "export", "--format", "finetune", "--out", str(tmp_path / "ft.jsonl"))[0] == 0
    rows = lines(tmp_path / "ft.jsonl")
    assert len(rows) == 2                                             # approved and rep-written; not the rejection
    roles = [[m["role"] for m in r["messages"]] for r in rows]
    assert roles == [["system", "user", "assistant"]] * 2
    system, user, final = rows[1]["messages"]
    assert "You are the customer support assistant of Nimbus Notes" in system["content"]
    assert "Is there a dark mode?" in user["content"] and "<customer_message" in user["content"]
    assert final["content"] == DARK_FINAL.replace("Bob", "Customer")
    assert "Hunter22x" not in (tmp_path / "ft.jsonl").read_text()


def test_each_days_figures_are_stored_for_the_plots(exported: tuple[Path, object]) -> None:
    _, settings = exported
    assert quality.refresh(settings) > 0       # type: ignore[arg-type]
    today = now().date()
    figures = {r["name"]: r for r in readings.daily(settings.database.url, since=today)}    # type: ignore[attr-defined]
    assert figures["drafts"]["value"] == 3 and figures["auto_send_rate"]["value"] == 0.0      # the policy holds all
    assert figures["approved_unedited_rate"]["value"] == pytest.approx(1 / 3, abs=1e-3) and figures["approved_unedited_rate"]["count"] == 3
    assert figures["edit_similarity"]["count"] == 1 and figures["edit_distance"]["value"] > 5
    assert {"grade:tone", "grade:language", "grade:safety", "grade:promises", "label:rudeness:ok"} <= set(figures)
    assert figures["case_seconds"]["count"] == 3 and 0 <= figures["case_seconds"]["value"] <= figures["case_seconds_max"]["value"]
    assert readings.daily(settings.database.url, since=today + timedelta(days=1)) == []  # type: ignore[attr-defined]
    quality.refresh(settings)                       # recomputing replaces, never doubles   # type: ignore[arg-type]
    assert len(readings.daily(settings.database.url, names=["drafts"])) == 1  # type: ignore[attr-defined]


def test_replay_shows_the_new_draft_beside_the_stored_one(exported: tuple[Path, object], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = exported
    [compared] = mailagent_json(capsys, config, "replay", "2")
    assert compared["draft_id"] == 2 and compared["old"]["reply"] == DARK_FINAL
    assert compared["old"]["decision"] == "hold" and "colleague" in compared["new"]["reply"]
    assert any(step.startswith("function: search_knowledge") for step in compared["new"]["trace"])
    assert any(step.startswith("policy:") for step in compared["old"]["trace"])
    (tmp_path / "send.toml").write_text('[policy]\ndirectory = "send"\n')
    (tmp_path / "send").mkdir()
    (tmp_path / "send" / "00.toml").write_text('[defaults]\ndecision = "send"\nmin_confidence = 0.0\n')
    [again] = mailagent_json(capsys, config, "replay", "1", "--config", str(tmp_path / "send.toml"))
    assert again["new"]["decision"] == "send" and again["old"]["decision"] == "hold"
    text = mailagent(capsys, config, "replay", "1")[1]
    assert "draft 1 (as stored)" in text and "replay (live config; nothing sent)" in text and " | " in text
    code, _, err = mailagent(capsys, config, "replay", "99")
    assert code == 1 and "conversation 99 has no decided draft" in err
