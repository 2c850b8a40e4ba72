"""A bad setting fails at load with one line that names the variable and what is wrong; a typo is warned about."""

from __future__ import annotations

import logging

import pytest

from relay_core.errors import ConfigError
from relay_core.settings import load, unknown_variables

BAD = [
    ("RELAY_LOG_LEVEL", "LOUD", "is not one of"),
    ("RELAY_RESULT_HOSTS", "", "is empty"),
    ("RELAY_RESULT_HOSTS", "*", "wildcards"),
    ("RELAY_RESULT_HOSTS", "runninghub.cn,*.evil.com", "wildcards"),
    ("RELAY_RESULT_HOSTS", "http://runninghub.cn", "not host names"),
    ("RELAY_ROUTES", "nonsense", "prefix"),
    ("RELAY_ROUTES", "input/vid=video_tryon,=x", "prefix"),
    ("RELAY_ROUTES", "input/vid=../../etc", "prefix"),
    ("RELAY_VISIBILITY_TIMEOUT_S", "2", "greater than or equal to 5"),
    ("RELAY_VISIBILITY_TIMEOUT_S", "soon", "integer"),
    ("RELAY_MAX_RECEIVE_COUNT", "0", "greater than or equal to 1"),
    ("RELAY_RECEIVE_BATCH", "17", "less than or equal to 16"),
    ("RELAY_REVIEW_PASSES", "maybe", "boolean"),
]


@pytest.mark.parametrize(("variable", "value", "says"), BAD)
def test_a_bad_value_fails_at_load_naming_the_variable(relay_home, monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load()
    line = str(caught.value)
    assert line.startswith(f"{variable}: ") and says in line and "\n" not in line
    assert "Value error" not in line


def test_the_error_shows_the_offending_value_but_never_a_secret(relay_home, monkeypatch):
    monkeypatch.setenv("RELAY_CALLBACK_SECRET", "s3cret-value-123")
    monkeypatch.setenv("RELAY_REPORT_RETRY_S", "-1")
    with pytest.raises(ConfigError) as caught:
        load()
    assert str(caught.value).startswith("RELAY_REPORT_RETRY_S: ") and "'-1'" in str(caught.value)
    assert "s3cret-value-123" not in str(caught.value)


def test_an_output_name_template_that_would_eat_memory_is_refused(tmp_path):
    from relay_core.pipelines import PACKAGED, PipelineConfigError, load_pipelines

    text = PACKAGED.read_text(encoding="utf-8").replace('"frame_{n:02}.jpg"', '"frame_{n:99999999999}.jpg"', 1)
    assert "99999999999" in text
    path = tmp_path / "pipelines.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineConfigError, match="only {n}"):
        load_pipelines(path)


def test_an_unknown_relay_variable_is_warned_about_with_the_likely_name(relay_home, monkeypatch, caplog):
    monkeypatch.setenv("RELAY_QEUEU", "redis://127.0.0.1:6379/0")
    assert unknown_variables({"RELAY_QEUEU": "x", "RELAY_QUEUE": "y", "PATH": "z"}) == ["RELAY_QEUEU"]
    with caplog.at_level(logging.WARNING, logger="relay.settings"):
        load()
    assert any("RELAY_QEUEU" in r.getMessage() and "RELAY_QUEUE" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("variable", "url", "says"),
    [
        ("RELAY_QUEUE", "redis://127.0.0.1:6379/8x", "is not a number"),
        ("RELAY_LEDGER", "redis://127.0.0.1:6379/8x", "is not a number"),
        ("RELAY_QUEUE", "redis://127.0.0.1:6379/0?prefx=relay", "unknown option(s) ['prefx']"),
        ("RELAY_LEDGER", "redis://127.0.0.1:6379/0?retention=5", "unknown option(s) ['retention']"),
        ("RELAY_QUEUE", "sqlite:///{tmp}/q.db?journal=wal", "unknown option(s) ['journal']"),
        ("RELAY_LEDGER", "sqlite:///{tmp}/afile/ledger.db", "is a file"),
        ("RELAY_QUEUE", "sqlite:///{tmp}/afile/sub/queue.db", "is a file"),
        ("RELAY_QUEUE", "sqlite:///{tmp}", "is a folder"),
    ],
)
def test_bad_queue_and_ledger_urls_fail_naming_the_variable(tmp_path, variable, url, says):
    from jobqueue import open_ledger, open_queue

    (tmp_path / "afile").write_text("not a folder")
    url = url.replace("{tmp}", str(tmp_path))
    opener = open_queue if variable == "RELAY_QUEUE" else open_ledger
    with pytest.raises(ConfigError) as caught:
        opener(url)
    assert str(caught.value).startswith(f"{variable}: ") and says in str(caught.value)


def test_good_urls_still_open(tmp_path, redis_url):
    from jobqueue import open_ledger, open_queue

    open_queue(f"sqlite:///{tmp_path}/q.db").close()
    open_ledger(f"sqlite:///{tmp_path}/l.db?retention_s=60").close()
    open_queue(f"{redis_url}&socket_timeout=3").close()
    open_ledger(redis_url.replace("?prefix=", "?retention_s=60&prefix=")).close()


def test_a_webhook_base_url_without_its_secret_fails_at_start(relay_home, monkeypatch):
    from consumer.services import build_services

    for name, value in {
        "RELAY_BACKEND_URL": "http://127.0.0.1:9",
        "RELAY_CALLBACK_SECRET": "a-callback-secret",
        "RUNNINGHUB_API_KEY": "key",
        "RELAY_WEBHOOK_BASE_URL": "https://hooks.example.com/relay",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="^RELAY_WEBHOOK_SECRET is not set"):
        build_services(load())
