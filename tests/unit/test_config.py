"""Settings: every field documented, environment and TOML file read, placeholders refused in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from jaif.config import Settings

DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"


def _fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _fields(annotation, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def test_every_setting_is_documented():
    docs = DOCS.read_text()
    missing = [name for name in _fields(Settings) if f"`{name}`" not in docs]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
    for name in _fields(Settings):
        env = "JAIF_" + name.upper().replace(".", "__")
        assert f"`{env}`" in docs, env


def test_environment_and_file(monkeypatch, tmp_path):
    config = tmp_path / "jaif.toml"
    config.write_text('redis_url = "redis://file"\n[inference]\nllama_threads = 3\ncooldown_s = 1.5\n')
    monkeypatch.setenv("JAIF_CONFIG_FILE", str(config))
    monkeypatch.setenv("JAIF_INFERENCE__LLAMA_THREADS", "2")
    settings = Settings()
    assert settings.inference.llama_threads == 2  # environment wins
    assert settings.inference.cooldown_s == 1.5
    assert settings.redis_url == "redis://file"
    assert settings.database_url == "sqlite:///var/jaif.db"


def test_placeholder_secret_refused_in_every_environment(monkeypatch):
    monkeypatch.setenv("JAIF_WEB__SECRET_KEY", "change-me-in-production")
    for environment in ("development", "production"):
        monkeypatch.setenv("JAIF_ENVIRONMENT", environment)
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings()
    monkeypatch.setenv("JAIF_WEB__SECRET_KEY", "a-real-secret-of-at-least-32-characters")
    assert Settings().environment == "production"
    monkeypatch.delenv("JAIF_WEB__SECRET_KEY")
    assert Settings().web.secret_key is None  # generated into data_dir/secret_key on first start


def test_metering_cannot_be_switched_off(monkeypatch):
    """`metering.enabled` was removed: set to false it is refused (not silently ignored), so an operator
    who relied on it learns that usage is metered and quotas are enforced."""
    for value in ("false", "0", "off", "f", "n", "maybe"):
        monkeypatch.setenv("JAIF_METERING__ENABLED", value)
        with pytest.raises(ValidationError, match="cannot be switched off"):
            Settings()
    monkeypatch.setenv("JAIF_METERING__ENABLED", "true")
    assert not hasattr(Settings().metering, "enabled")
    monkeypatch.delenv("JAIF_METERING__ENABLED")
    assert "enabled" not in Settings().metering.model_dump()


def test_upstream_proxy_and_ca_bundle_are_checked_at_start(monkeypatch, tmp_path):
    monkeypatch.setenv("JAIF_INFERENCE__UPSTREAM_PROXY", "socks5://proxy:1080")
    with pytest.raises(ValidationError, match="upstream_proxy"):
        Settings()
    monkeypatch.setenv("JAIF_INFERENCE__UPSTREAM_PROXY", "http://user:pw@proxy:3128")
    monkeypatch.setenv("JAIF_INFERENCE__UPSTREAM_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValidationError, match="upstream_ca_bundle"):
        Settings()
    (tmp_path / "ca.pem").write_text("")
    monkeypatch.setenv("JAIF_INFERENCE__UPSTREAM_CA_BUNDLE", str(tmp_path / "ca.pem"))
    assert Settings().inference.upstream_proxy == "http://user:pw@proxy:3128"
