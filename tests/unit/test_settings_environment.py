"""Which environment variables :func:`relay_core.settings.load` reads, and which value wins."""

from __future__ import annotations

import pytest

from relay_core.errors import ConfigError
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
    assert settings.runninghub_api_key.get_secret_value() == "from-an-override"


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
