"""deploy/execgw.sample.toml: every setting of server/config.py is in it, each shown default is
the real one, and the file loads through the gateway's own settings loader (`serve --config`)."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from execgw.server.config import Settings, load_settings

from .deploy_files import DEPLOY

SAMPLE = DEPLOY / "execgw.sample.toml"
# A setting line is "#key = value", the "#" right before the key; explanations are "# text".
SETTING_LINE = re.compile(r"(?m)^#([a-z_][a-z0-9_]*)(\s*=)")


@pytest.fixture(autouse=True)
def no_execgw_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment beats the file: a variable left set would hide what the file says.
    for name in list(os.environ):
        if name.startswith("EXECGW_"):
            monkeypatch.delenv(name)


def uncommented(tmp_path: Path) -> Path:
    """The sample with every setting line switched on."""
    path = tmp_path / "execgw.toml"
    path.write_text(SETTING_LINE.sub(r"\1\2", SAMPLE.read_text(encoding="utf-8")), encoding="utf-8")
    return path


def test_every_setting_has_a_line_in_the_sample():
    shown = SETTING_LINE.findall(SAMPLE.read_text(encoding="utf-8"))
    names = [name for name, _ in shown]
    missing = sorted(set(Settings.model_fields) - set(names))
    assert not missing, f"add a commented line with its default to deploy/execgw.sample.toml for: {missing}"
    unknown = sorted(set(names) - set(Settings.model_fields))
    assert not unknown, f"deploy/execgw.sample.toml shows settings the gateway does not have: {unknown}"
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"shown more than once: {twice}"


def test_the_sample_as_shipped_loads_and_changes_nothing():
    assert load_settings(SAMPLE).model_dump() == Settings().model_dump()


def test_every_shown_default_is_the_real_default_and_every_example_loads(tmp_path: Path):
    switched_on = tomllib.loads(uncommented(tmp_path).read_text(encoding="utf-8"))
    loaded = load_settings(uncommented(tmp_path))  # the real loader: types, validators, extra="forbid"
    defaults = Settings()
    wrong = {}
    for name, field in Settings.model_fields.items():
        assert name in switched_on, name
        if field.default is None:
            # Unset by default: the line is an example, and it must be a value the setting takes.
            assert getattr(loaded, name) is not None, f"{name}: the example did not load"
        elif getattr(loaded, name) != getattr(defaults, name):
            wrong[name] = (switched_on[name], getattr(defaults, name))
    assert not wrong, f"the sample shows a default that is not the real one (shown, real): {wrong}"


def test_unset_settings_are_said_to_be_unset_by_default():
    # The one way a reader can tell an example from a default.
    text = SAMPLE.read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        if field.default is not None:
            continue
        line = text.index(f"\n#{name}")
        explanation = text[text.rindex("\n\n", 0, line):line]
        assert "nset by default" in explanation, f"say 'Unset by default' in the comment above #{name}"


def test_the_sample_holds_no_secret():
    text = SAMPLE.read_text(encoding="utf-8")
    password = tomllib.loads(SETTING_LINE.sub(r"\1\2", text))["database_password"]
    assert "REPLACE-ME" in password and "placeholder" in password
    assert not re.search(r"mysql\+pymysql://[^@/\s]*:[^@/\s]*@", text), "no password in a URL"
