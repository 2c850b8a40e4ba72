"""RELAY_BACKEND_URL: an http(s) URL with a host, checked by pydantic at load, kept a normalised ``str``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from relay_core.errors import ConfigError
from relay_core.settings import load

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value, loaded",
    [
        ("", ""),  # unset: the consumer's require() says so when it needs it
        ("   ", ""),
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        ("http://127.0.0.1:8766/", "http://127.0.0.1:8766"),
        (" HTTPS://Backend.Example.COM/api/ ", "https://backend.example.com/api"),
        ("https://backend.example.com:8443/relay/v1", "https://backend.example.com:8443/relay/v1"),
    ],
)
def test_http_urls_load_normalised_as_str(relay_home, monkeypatch, value, loaded):
    monkeypatch.setenv("RELAY_BACKEND_URL", value)
    settings = load()
    assert settings.backend_url == loaded and type(settings.backend_url) is str


@pytest.mark.parametrize(
    "value, problem",
    [
        ("ftp://backend.example.com/x", "URL scheme should be 'http' or 'https'"),
        ("not a url", "relative URL without a base"),
        ("backend.example.com/x", "relative URL without a base"),
        ("localhost:8080", "URL scheme should be 'http' or 'https'"),
        ("http://", "empty host"),
        ("http://h:99999", "invalid port number"),
        ("https://backend.example.com/?token=1", "a base URL takes no query or fragment"),
        ("https://backend.example.com/#top", "a base URL takes no query or fragment"),
    ],
)
def test_anything_else_fails_at_load_naming_the_variable(relay_home, monkeypatch, value, problem):
    monkeypatch.setenv("RELAY_BACKEND_URL", value)
    with pytest.raises(ConfigError, match="^RELAY_BACKEND_URL: ") as caught:
        load()
    assert problem in str(caught.value)


def test_overrides_are_checked_too(relay_home):
    with pytest.raises(ConfigError, match="^RELAY_BACKEND_URL: not an http"):
        load(backend_url="file:///etc/passwd")
    assert load(backend_url="http://h:1/").backend_url == "http://h:1"


def test_url_checking_is_not_loaded_until_a_url_is_set(relay_home):
    """The shim never sets RELAY_BACKEND_URL: its cold start must not pay for pydantic's URL types."""
    probe = (
        "import sys; from relay_core.settings import load; load(); "
        "before = 'pydantic.networks' in sys.modules; load(backend_url='http://h'); "
        "print(before, 'pydantic.networks' in sys.modules)"
    )
    env = {"RELAY_HOME": str(relay_home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
