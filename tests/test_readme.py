"""The README documents what a user can set: every serve flag and env var is in its table."""

from pathlib import Path

from server.settings import Settings, env_name

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [
        name
        for name in Settings.model_fields
        if f"`--{name.replace('_', '-')}`" not in README or f"`{env_name(name)}`" not in README
    ]
    assert missing == []


def test_readme_names_the_two_commands() -> None:
    assert "scripts/serve" in README
    assert "scripts/test" in README
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "scripts/test" in ci
