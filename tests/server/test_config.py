"""Configuration layering: flags over EXECGW_* environment over the TOML file."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from execgw.server.config import load_settings


def test_flags_beat_environment_which_beats_the_file(tmp_path, monkeypatch):
    config = tmp_path / "execgw.toml"
    config.write_text('listen = "127.0.0.1:6001"\nib_client_id = 7\nib_paper = "127.0.0.1:4002"\n')
    monkeypatch.setenv("EXECGW_IB_CLIENT_ID", "9")
    monkeypatch.setenv("EXECGW_LISTEN", "127.0.0.1:6002")
    settings = load_settings(config, listen="127.0.0.1:6003")
    assert settings.listen == "127.0.0.1:6003"  # flag
    assert settings.ib_client_id == 9  # environment over file
    assert settings.ib_paper == "127.0.0.1:4002"  # file
    assert settings.ib_live is None and settings.live_enabled is False  # defaults


def test_bad_values_are_refused_with_the_setting_named(tmp_path, monkeypatch):
    monkeypatch.setenv("EXECGW_IB_PAPER", "no-port-here")
    with pytest.raises(ValidationError, match="ib_paper"):
        load_settings()
    monkeypatch.delenv("EXECGW_IB_PAPER")
    with pytest.raises(ValidationError, match="pacing_per_second"):
        load_settings(pacing_per_second=60)  # above IB's 50 per second
    config = tmp_path / "typo.toml"
    config.write_text('lisen = "127.0.0.1:1"\n')
    with pytest.raises(ValidationError, match="lisen"):
        load_settings(config)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")


def test_database_password_and_url_never_show_in_settings_or_their_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("EXECGW_DATABASE_URL", "mysql+pymysql://execgw:pw-in-url@db/execgw")
    monkeypatch.setenv("EXECGW_DATABASE_PASSWORD", "pw-in-env")
    monkeypatch.setenv("EXECGW_DATABASE_PASSWORD_FILE", str(tmp_path / "pw"))
    settings = load_settings()
    assert settings.database_password.get_secret_value() == "pw-in-env"
    assert settings.database_password_file == tmp_path / "pw"
    assert "pw-in" not in repr(settings) and "pw-in" not in str(settings)
    monkeypatch.setenv("EXECGW_DATABASE_URL", "mysql+pymysql://execgw:pw-in-url@db/execgw?password=pw-in-query")
    with pytest.raises(ValidationError, match="max_watch_streams") as refused:
        load_settings(max_watch_streams=0, database_timeout_seconds=1.5)
    assert "pw-in" not in str(refused.value)


def test_watch_stream_bounds_and_database_timeout_are_settings(monkeypatch):
    monkeypatch.setenv("EXECGW_MAX_WATCH_STREAMS", "50")
    monkeypatch.setenv("EXECGW_MAX_WATCH_STREAMS_PER_CALLER", "5")
    monkeypatch.setenv("EXECGW_DATABASE_TIMEOUT_SECONDS", "2.5")
    settings = load_settings()
    assert (settings.max_watch_streams, settings.max_watch_streams_per_caller) == (50, 5)
    assert settings.database_timeout_seconds == 2.5
    with pytest.raises(ValidationError, match="database_timeout_seconds"):
        load_settings(database_timeout_seconds=0)
