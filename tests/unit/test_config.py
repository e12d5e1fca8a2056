"""Settings from defaults, RELAY_* variables and flags."""

from __future__ import annotations

import pytest

from relay.config import Settings
from relay.store.database import normalise_url


def test_environment_then_flags_override_defaults() -> None:
    environ = {
        "RELAY_PORT": "9000",
        "RELAY_PING_INTERVAL": "2.5",
        "RELAY_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "RELAY_BEHIND_PROXY": "yes",
        "RELAY_DATABASE_URL": "",
    }
    settings = Settings.from_env(environ, port=None, host="0.0.0.0")
    assert settings.port == 9000
    assert settings.host == "0.0.0.0"
    assert settings.ping_interval == 2.5
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.behind_proxy is True
    assert settings.database_url == Settings().database_url, "an empty variable means the default"
    assert Settings.from_env(environ, port=1234).port == 1234


def test_a_malformed_variable_names_itself() -> None:
    with pytest.raises(ValueError, match="RELAY_MAX_FPS='fast'"):
        Settings.from_env({"RELAY_MAX_FPS": "fast"})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+psycopg://u:p@h:5433/db"),
        ("sqlite:///relay.db", "sqlite+aiosqlite:///relay.db"),
        ("sqlite+aiosqlite:////abs/relay.db", "sqlite+aiosqlite:////abs/relay.db"),
    ],
)
def test_database_urls_people_type_are_made_async(given: str, expected: str) -> None:
    assert normalise_url(given) == expected
