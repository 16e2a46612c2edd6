"""Settings: the only reader of the environment.

Every field is documented in docs/configuration.md; tests/unit/test_config_docs.py fails when one is not.
Environment variables use the prefix ``JAIF_`` and ``__`` between nested groups, for example
``JAIF_INFERENCE__LLAMA_THREADS=2``. ``JAIF_CONFIG_FILE`` may name a TOML file with the same keys;
environment variables win over it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PLACEHOLDER_SECRET = "change-me-in-production"


class InferenceSettings(BaseModel):
    builtin_models: bool = True
    llama_threads: int = Field(1, ge=1)
    llama_context: int = Field(8192, ge=256)
    embedding_threads: int = Field(1, ge=1)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 300.0
    max_upstream_connections: int = Field(1000, ge=1)
    health_interval_s: float = Field(5.0, gt=0)
    cooldown_s: float = Field(10.0, ge=0)
    retries: int = Field(2, ge=0)
    registry_refresh_s: float = Field(5.0, gt=0)
    key_cache_s: float = Field(2.0, ge=0)


class MeteringSettings(BaseModel):
    enabled: bool = True
    flush_interval_s: float = Field(0.5, gt=0)
    flush_max_rows: int = Field(1000, ge=1)
    lease_tokens: int = Field(20000, ge=1)
    lease_ttl_s: float = Field(60.0, gt=0)
    lease_idle_return_s: float = Field(5.0, gt=0)
    default_rpm: int | None = None
    default_tpm: int | None = None


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1)
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    log_level: str = "info"
    metrics_dir: Path | None = None


class SmtpSettings(BaseModel):
    host: str | None = None
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "AI Factory <noreply@localhost>"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JAIF_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    environment: str = "development"
    data_dir: Path = Path("var")
    database_url: str = ""
    redis_url: str | None = None
    inference: InferenceSettings = InferenceSettings()
    metering: MeteringSettings = MeteringSettings()
    web: WebSettings = WebSettings()
    smtp: SmtpSettings = SmtpSettings()

    @property
    def outbox_dir(self) -> Path:
        """Where e-mails go when no SMTP host is set (the embedded default)."""
        return self.data_dir / "outbox"

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'jaif.db'}"
        if self.environment != "development" and self.web.secret_key.get_secret_value() in (
            PLACEHOLDER_SECRET,
            "",
        ):
            raise ValueError("JAIF_WEB__SECRET_KEY must be set outside development")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("JAIF_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)
