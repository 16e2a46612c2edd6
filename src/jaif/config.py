"""Settings: the only reader of the environment.

Every field is documented in docs/configuration.md; tests/unit/test_config.py fails when one is not.
Environment variables use the prefix ``JAIF_`` and ``__`` between nested groups, for example
``JAIF_INFERENCE__LLAMA_THREADS=2``. ``JAIF_CONFIG_FILE`` may name a TOML file with the same keys;
environment variables win over it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, FilePath, SecretStr, TypeAdapter, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# Refused in every environment: the value earlier versions shipped as the default, and anything short.
PLACEHOLDER_SECRET = "change-me-in-production"
SECRET_KEY_MIN_LENGTH = 32


def secret_key_problem(value: str) -> str | None:
    """What is wrong with a session-signing secret, or None: the placeholder, empty, or too short."""
    value = value.strip()
    if not value or value == PLACEHOLDER_SECRET or "change-me" in value.lower():
        return "is a placeholder or empty"
    if len(value) < SECRET_KEY_MIN_LENGTH:
        return f"is shorter than {SECRET_KEY_MIN_LENGTH} characters"
    return None


class InferenceSettings(BaseModel):
    builtin_models: bool = True
    llama_threads: int = Field(1, ge=1)
    llama_context: int = Field(8192, ge=256)
    embedding_threads: int = Field(1, ge=1)
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    connect_timeout_s: float = 3.0
    # Deprecated: the one silence limit of old; when set, it is the default of idle_timeout_s.
    read_timeout_s: float | None = Field(None, gt=0)
    max_upstream_connections: int = Field(1000, ge=1)
    upstream_transport: Literal["http11", "aiohttp"] = "http11"
    upstream_pool_timeout_s: float = Field(10.0, gt=0)
    max_upstream_body_bytes: int = Field(64 * 1024 * 1024, ge=1024 * 1024)
    upstream_proxy: str | None = Field(None, pattern=r"^http://[^/?#]+/?$")
    upstream_ca_bundle: FilePath | None = None
    health_interval_s: float = Field(5.0, gt=0)
    cooldown_s: float = Field(10.0, ge=0)
    retries: int = Field(2, ge=0)
    # Prefix affinity (inference/routing.py): requests whose prompts begin alike go to one replica.
    affinity: bool = True
    affinity_prefix_chars: int = Field(2048, ge=16)
    affinity_slack: int = Field(2, ge=0)
    registry_refresh_s: float = Field(5.0, gt=0)
    key_cache_s: float = Field(2.0, ge=0)
    # While the database is down, a key verified before keeps working this long past its cache entry.
    key_stale_s: float = Field(300.0, ge=0)
    # Checked before any other work on a request (inference/prompt_size.py).
    max_messages: int = Field(2048, ge=1)
    max_prompt_bytes: int = Field(1024 * 1024, ge=1024)
    # Upstream time limits (docs/gateway.md, "Failure behaviour"); a model may override the first three.
    ttfb_timeout_s: float = Field(30.0, gt=0)  # until the first byte of the answer (a stream's first event)
    idle_timeout_s: float = Field(60.0, gt=0)  # between a stream's events, once the first arrived
    request_timeout_s: float = Field(600.0, gt=0)  # the whole exchange with one replica
    probe_timeout_s: float = Field(5.0, gt=0)  # one health check (a one-token completion)
    # When set, GET /metrics wants ``Authorization: Bearer <token>``.
    metrics_token: SecretStr | None = None

    @model_validator(mode="after")
    def _deprecated_read_timeout(self) -> InferenceSettings:
        # read_timeout_s (deprecated) was the one limit on silence: it stays the idle limit's default.
        if self.read_timeout_s is not None and "idle_timeout_s" not in self.model_fields_set:
            self.idle_timeout_s = self.read_timeout_s
        return self


class MeteringSettings(BaseModel):
    # No setting turns metering or quota enforcement off (metering/meter.py); `metering.enabled` was one.
    flush_interval_s: float = Field(0.5, gt=0)
    flush_max_rows: int = Field(10_000, ge=1)
    lease_tokens: int = Field(20000, ge=1)
    lease_ttl_s: float = Field(60.0, gt=0)
    lease_idle_return_s: float = Field(5.0, gt=0)
    # How often a process looks for leases of processes that ended (same host) or expired (issue 11).
    lease_reclaim_interval_s: float = Field(5.0, gt=0)
    default_rpm: int | None = None
    default_tpm: int | None = None
    # While the rate limiter's store (Redis, else the database) is down: count in each process's own
    # window ("local", approximate) or refuse keys with a limit with 503 ("refuse").
    ratelimit_on_outage: Literal["local", "refuse"] = "local"

    @model_validator(mode="before")
    @classmethod
    def _no_switch(cls, data: object) -> object:
        """Refuse the removed ``metering.enabled`` set to false rather than ignore it: an operator who
        set it must learn that quotas are enforced now."""
        if isinstance(data, dict) and "enabled" in data:
            try:  # every spelling pydantic reads as false; one that is no boolean at all is refused too
                switched_off = not TypeAdapter(bool).validate_python(data["enabled"])
            except ValidationError:
                switched_off = True
            if switched_off:
                raise ValueError(
                    "JAIF_METERING__ENABLED was removed: metering and token quotas cannot be switched off. "
                    "Unset it (a project without a token quota is not limited)."
                )
            data = {k: v for k, v in data.items() if k != "enabled"}
        return data


class WebSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(1, ge=1)
    # None: jaif generates a random secret on first start and keeps it in data_dir/secret_key (mode 0600).
    secret_key: SecretStr | None = None
    log_level: str = "info"
    metrics_dir: Path | None = None


class OidcProviderSettings(BaseModel):
    """One OpenID Connect provider users may sign in with (Helmholtz AAI, MyAccessID, a Keycloak...)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    display_name: str
    issuer: str
    discovery_url: str | None = None
    client_id: str
    client_secret: SecretStr
    scopes: str = "openid email profile"
    trust_email: bool = False

    @property
    def metadata_url(self) -> str:
        return self.discovery_url or self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class IdentitySettings(BaseModel):
    public_url: str | None = None
    allow_signup: bool = True
    password_min_length: int = Field(12, ge=8, le=128)
    session_max_age_s: int = Field(14 * 24 * 3600, ge=60)
    session_https_only: bool = False
    # With public_url set, requests for other host names are refused (400); these are accepted too.
    trusted_hosts: list[str] = []
    verify_email_hours: float = Field(48.0, gt=0)
    reset_password_hours: float = Field(2.0, gt=0)
    invitation_days: float = Field(14.0, gt=0)
    # Failed sign-ins: this many for one account, or per_address from one client address, within
    # window_s refuse further sign-ins there for lockout_s (identity/throttle.py).
    sign_in_max_failures: int = Field(5, ge=1, le=1000)
    sign_in_max_failures_per_address: int = Field(50, ge=0, le=100_000)  # 0: by account only
    sign_in_window_s: int = Field(900, ge=1)
    sign_in_lockout_s: int = Field(900, ge=1)
    oidc_providers: list[OidcProviderSettings] = []

    @model_validator(mode="after")
    def _unique_providers(self) -> IdentitySettings:
        names = [p.name for p in self.oidc_providers]
        if len(names) != len(set(names)):
            raise ValueError("identity.oidc_providers: each provider needs a name of its own")
        return self

    @property
    def cookie_https_only(self) -> bool:
        return self.session_https_only or (self.public_url or "").startswith("https://")


class SmtpSettings(BaseModel):
    host: str | None = None
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "AI Factory <noreply@localhost>"


class PartitionProfile(BaseModel):
    """One partition of the site profile: its hardware, power model and how GPU-hours are counted.

    Under ``scheduler = "slurm"`` the partitions come from ``sinfo``; an entry here of the same name
    completes them (power, GPU model, charging) and its other fields are what Slurm reports."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(4, ge=0)
    gpu_model: str = "GPU"
    cpus_per_node: int = Field(1, ge=1)
    memory_gb_per_node: float = Field(16.0, gt=0)
    gpu_power_w: float = Field(700.0, ge=0)
    node_power_w: float | None = Field(None, ge=0)  # default: gpus_per_node x gpu_power_w
    max_walltime_min: int = Field(1440, ge=1)
    charge: Literal["gpu", "node"] = "gpu"


class ComputeSettings(BaseModel):
    site: Literal["local", "jupiter"] = "local"
    partitions: list[PartitionProfile] = []
    grid_intensity_g_per_kwh: float = Field(380.0, ge=0)
    jobs_dir: Path | None = None
    local_gpus: int = Field(4, ge=0)
    local_cpus: int | None = Field(None, ge=1)
    max_script_bytes: int = Field(1_000_000, ge=1024)
    max_listed_files: int = Field(1000, ge=1)  # entries of a job's folder its page (and the API) list at most
    accounting_batch: int = Field(10000, ge=1)
    # How local jobs are kept from the server (compute/isolation.py, docs/compute.md).
    sandbox: Literal["auto", "bwrap", "off"] = "auto"
    job_user_prefix: str = Field("jaif-job-", pattern=r"^[a-z_][a-z0-9_-]{0,20}$")
    local_single_user: bool = False
    local_max_processes: int = Field(512, ge=16)
    job_key_margin_min: int = Field(10, ge=1)


class SlurmSettings(BaseModel):
    conf: Path | None = None
    bin_dir: Path | None = None
    cluster: str | None = None
    parent_account: str = "root"
    org_account_prefix: str = Field("org_", pattern=r"^[a-z0-9_]{1,20}$")
    submit_user: str | None = None
    command_timeout_s: float = Field(60.0, gt=0)
    sync_interval_s: float = Field(300.0, ge=0)


class DeploymentSettings(BaseModel):
    """Model deployments (deployments/, docs/deployments.md): the controller that runs their replicas."""

    interval_s: float = Field(1.0, gt=0)  # how often the controller reconciles (0 < s); the server runs it
    starting_interval_s: float = Field(0.25, gt=0)  # and while a replica starts or requests are held
    enabled: bool = True  # False: this server runs no controller (another one does)
    start_timeout_s: float = Field(600.0, gt=0)  # a replica not ready by then is cancelled and replaced
    health_interval_s: float = Field(10.0, gt=0)  # how often a ready replica's health is checked
    health_failures: int = Field(3, ge=1)  # consecutive failed health checks before a ready replica is replaced
    probe_timeout_s: float = Field(5.0, gt=0)
    restart_backoff_s: float = Field(5.0, ge=0)  # after a replica failed before ever being ready: doubling waits
    restart_backoff_max_s: float = Field(300.0, ge=0)
    drain_s: float = Field(10.0, ge=0)  # a draining replica is kept at least this long (the gateways let go)
    drain_timeout_s: float = Field(300.0, gt=0)  # and cancelled after this even with requests in flight
    python: Path | None = None  # the interpreter with llama-cpp-python for llama-cpp replicas (default: jaif's)
    handover_s: float = Field(600.0, ge=0)  # a successor is submitted this long before a replica's time limit
    scale_up_window_s: float = Field(10.0, gt=0)  # the moving average of in-flight requests the target follows
    scale_down_window_s: float = Field(300.0, ge=0)  # how long the target must stay lower before scaling down
    # A request for a deployment with no replica ready (a cold start) is held this long for one, then 503.
    cold_start_timeout_s: float = Field(300.0, ge=0)
    # Every gateway process reports its deployments' load (in flight, held, last request) this often; the
    # controller counts reports younger than load_fresh_s (a process that died drops out then).
    report_interval_s: float = Field(1.0, gt=0)
    load_fresh_s: float = Field(5.0, gt=0)
    hold_refresh_s: float = Field(0.25, gt=0)  # while requests are held, the process re-reads the replicas this often


class FilesSettings(BaseModel):
    """Files uploaded through /v1/files (files/, docs/batches.md)."""

    dir: Path | None = None  # where they are stored (default: data_dir/files)
    max_bytes: int = Field(200 * 1024 * 1024, ge=1024)  # one file's size
    max_per_project: int = Field(500, ge=1)  # files a project may keep (batch output files included)
    max_lines: int = Field(50_000, ge=1)  # requests in one batch input file


class BatchSettings(BaseModel):
    """The Batch API's runner (batches/runner.py, docs/batches.md): how batches run beside interactive traffic."""

    enabled: bool = True  # False: this server runs no batches (another one sharing the database does)
    max_in_flight: int = Field(4, ge=1)  # lines under way in this server, all batches together
    max_in_flight_per_batch: int = Field(2, ge=1)  # lines of one batch under way at once
    max_running: int = Field(4, ge=1)  # batches this server runs at once
    poll_s: float = Field(1.0, gt=0)  # how often it looks for batches to run, and saves their progress
    lease_s: float = Field(30.0, gt=0)  # a batch whose server stopped renewing its claim this long is taken over
    drain_s: float = Field(30.0, ge=0)  # on shutdown, lines under way are given this long to finish
    retry_s: float = Field(2.0, gt=0)  # wait before a line refused by a rate limit or a missing replica is retried


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
    identity: IdentitySettings = IdentitySettings()
    scheduler: Literal["local", "slurm"] = "local"
    compute: ComputeSettings = ComputeSettings()
    slurm: SlurmSettings = SlurmSettings()
    deployments: DeploymentSettings = DeploymentSettings()
    files: FilesSettings = FilesSettings()
    batches: BatchSettings = BatchSettings()

    @property
    def outbox_dir(self) -> Path:
        """Where e-mails go when no SMTP host is set (the embedded default)."""
        return self.data_dir / "outbox"

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'jaif.db'}"
        if self.web.secret_key is not None and (problem := secret_key_problem(self.web.secret_key.get_secret_value())):
            raise ValueError(
                f"JAIF_WEB__SECRET_KEY {problem}: set at least {SECRET_KEY_MIN_LENGTH} random characters "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(48))'), or leave it unset and jaif "
                "generates one in data_dir/secret_key"
            )
        return self

    @property
    def files_dir(self) -> Path:
        """Where uploaded files and batch results are kept."""
        return self.files.dir or self.data_dir / "files"

    @property
    def secret_key_file(self) -> Path:
        """Where the generated session secret is kept when JAIF_WEB__SECRET_KEY is not set."""
        return self.data_dir / "secret_key"

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
