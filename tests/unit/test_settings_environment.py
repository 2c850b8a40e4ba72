"""Which environment variables :func:`relay_core.settings.load` reads, and which value wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay_core.errors import ConfigError
from relay_core.field_checks import FieldError
from relay_core.settings import environment_values, load


def test_relay_names_match_in_any_case_and_unknown_names_are_not_values():
    found = environment_values({"relay_queue": "q", "Relay_Ledger": "l", "RELAY_QEUEU": "typo", "PATH": "/bin"})
    assert found == {"queue": "q", "ledger": "l"}


def test_vendor_settings_come_from_their_own_names_first():
    assert environment_values({"RUNNINGHUB_API_KEY": "vendor-key"}) == {"runninghub_api_key": "vendor-key"}
    both = {"RELAY_RUNNINGHUB_API_KEY": "relay-named", "runninghub_api_key": "vendor-named"}
    assert environment_values(both) == {"runninghub_api_key": "vendor-named"}
    assert environment_values({"RELAY_RUNNINGHUB_API_KEY": "relay-named"}) == {"runninghub_api_key": "relay-named"}


def test_overrides_win_over_the_environment(relay_home, monkeypatch):
    monkeypatch.setenv("RELAY_QUEUE", "sqlite:///from-env.db")
    monkeypatch.setenv("RUNNINGHUB_API_KEY", "from-the-environment")
    assert load().queue == "sqlite:///from-env.db"
    settings = load(queue="sqlite:///override.db", runninghub_api_key="from-an-override")
    assert settings.queue == "sqlite:///override.db"
    assert settings.runninghub_api_key.reveal() == "from-an-override"


def test_values_are_validated_and_converted(relay_home, monkeypatch):
    monkeypatch.setenv("relay_review_passes", "yes")
    monkeypatch.setenv("RELAY_MAX_RECEIVE_COUNT", " 3 ")
    monkeypatch.setenv("RELAY_LOG_LEVEL", "debug")
    monkeypatch.setenv("RELAY_RESULT_HOSTS", " A.example.com, .B.example.org ")
    settings = load()
    assert settings.review_passes is True and settings.max_receive_count == 3 and settings.log_level == "DEBUG"
    assert settings.result_hosts == "a.example.com,.b.example.org"


def test_vendor_urls_are_stripped_and_a_bad_override_names_its_variable(relay_home, monkeypatch):
    monkeypatch.setenv("RUNNINGHUB_BASE_URL", " http://127.0.0.1:8 ")
    assert load().runninghub_base_url == "http://127.0.0.1:8"
    with pytest.raises(ConfigError, match="^RELAY_MAX_RECEIVE_COUNT: "):
        load(max_receive_count=0)


def test_secrets_are_hidden_in_str_repr_and_errors_and_revealed_only_on_request(relay_home, monkeypatch):
    monkeypatch.setenv("RELAY_CALLBACK_SECRET", "s3cret-value-123")
    settings = load()
    assert settings.callback_secret.reveal() == "s3cret-value-123"
    assert str(settings.callback_secret) == "**********" and "s3cret" not in repr(settings)
    assert str(settings.webhook_secret) == "" and repr(settings.webhook_secret) == "Secret('')"  # unset shows so
    with pytest.raises(ConfigError) as caught:
        load(callback_secret=17)
    assert str(caught.value) == "RELAY_CALLBACK_SECRET: input should be a valid string (got a value (hidden))"


def test_replace_checks_the_new_values_and_load_refuses_an_unknown_override(relay_home):
    settings = load()
    assert settings.replace(receive_batch="4").receive_batch == 4 and settings.receive_batch == 8
    with pytest.raises(FieldError, match="^receive_batch: input should be less than or equal to 16$"):
        settings.replace(receive_batch=17)
    with pytest.raises(TypeError, match="no setting named recieve_batch"):
        load(recieve_batch=4)


@pytest.mark.parametrize(
    "variable, value, says",
    [
        ("RELAY_STEP_MARGIN_S", "nan", "input should be a finite number"),
        ("RELAY_RECEIVE_WAIT_S", "soon", "input should be a valid number, unable to parse string as a number"),
        ("RELAY_WEBHOOK_RATE_PER_S", "0", "input should be greater than 0"),
        ("RELAY_VISIBILITY_TIMEOUT_S", "12.5", "input should be a valid integer, unable to parse string"),
    ],
)
def test_numbers_from_the_environment_are_parsed_strictly(relay_home, monkeypatch, variable, value, says):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable}: {says}"):
        load()


def test_flags_read_the_usual_words_and_paths_may_be_unset(relay_home, monkeypatch):
    for word, meaning in (("on", True), (" OFF ", False), ("1", True), ("n", False)):
        monkeypatch.setenv("RELAY_ALLOW_PRIVATE_HOSTS", word)
        assert load().allow_private_hosts is meaning
    monkeypatch.setenv("RELAY_PIPELINES", "")
    assert load().pipelines is None and load(pipelines="x.toml").pipelines == Path("x.toml")
