"""RELAY_BACKEND_URL: an http(s) URL with a host, checked at load, kept a normalised ``str``."""

from __future__ import annotations

import pytest

from relay_core.errors import ConfigError
from relay_core.settings import load


@pytest.mark.parametrize(
    "value, loaded",
    [
        ("", ""),  # unset: the consumer's require() says so when it needs it
        ("   ", ""),
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        ("http://127.0.0.1:8766/", "http://127.0.0.1:8766"),
        (" HTTPS://Backend.Example.COM/api/ ", "https://backend.example.com/api"),
        ("https://backend.example.com:8443/relay/v1", "https://backend.example.com:8443/relay/v1"),
        ("http://backend.example.com:80/relay", "http://backend.example.com/relay"),  # the default port
        ("http://[::1]:8080/a b/", "http://[::1]:8080/a%20b"),
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
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
        ("http://h:port", "invalid port number"),
        ("http://back end.example.com", "invalid domain character"),
        ("http://[::1/x", "invalid IPv6 URL"),
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
