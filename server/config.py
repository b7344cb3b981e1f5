"""Layered configuration: command-line flags over environment (EXECGW_*) over a TOML file.

The environment names EXECGW_DATABASE_URL, EXECGW_LISTEN, EXECGW_IB_PAPER, EXECGW_IB_LIVE and
EXECGW_IB_CLIENT_ID are fixed: operators script against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from execgw.server.engine.account_guard import is_paper_account
from execgw.server.engine.validation import DEFAULT_CURRENCIES, DEFAULT_EXCHANGES, DEFAULT_MAX_ORDER_QUANTITY
from execgw.server.ib.times import validate_zone_name

# Generous upper bounds of one valid order's and the rest of a SubmitRunRequest's encoded size.
ORDER_BYTES = 256
REQUEST_OVERHEAD_BYTES = 4096


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value is never echoed, since it may be a URL with a password.
    model_config = SettingsConfigDict(env_prefix="EXECGW_", extra="forbid", hide_input_in_errors=True)

    database_url: str | None = Field(
        None, repr=False,
        description="SQLAlchemy URL; unset means the embedded SQLite file ./execgw-data/execgw.sqlite3",
    )
    database_password: SecretStr | None = Field(
        None, description="database password merged into database_url (EXECGW_DATABASE_PASSWORD); keeps it off `ps`"
    )
    database_password_file: Path | None = Field(
        None, description="file holding the database password (EXECGW_DATABASE_PASSWORD_FILE)"
    )
    database_timeout_seconds: float = Field(
        5.0, gt=0, description="connect, read and write timeout for MySQL: a hung server becomes an outage"
    )
    listen: str = Field("127.0.0.1:50051", description="host:port the gRPC server binds")
    tls_cert_file: Path | None = Field(None, description="PEM certificate (chain) of the gRPC port; unset: plaintext")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file, unencrypted, mode 600")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA(s) signing client certificates; set: every client must present one (mTLS)"
    )
    insecure_allow_remote: bool = Field(
        False, description="listen on a non-loopback address without TLS and caller credentials (warned at start)"
    )
    callers_file: Path | None = Field(
        None, description="TOML file of the callers (token hashes, permissions, accounts); unset: only the "
        "implicit local caller (read, paper) on a loopback-only gateway"
    )
    ib_paper: str | None = Field(
        None, description="host:port of the paper TWS/IB Gateway; unset starts the built-in simulator"
    )
    ib_live: str | None = Field(None, description="host:port of the live TWS/IB Gateway; unset disables live")
    live_enabled: bool = Field(False, description="live runs are refused unless this is true and ib_live is set")
    ib_client_id: int = Field(1, ge=0, description="IB API client id the gateway connects with")
    gateway_name: str = Field(
        "execgw", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="this gateway's name: it owns the runs it takes, and resumes only those after a restart; "
        "several gateways on one database need one name each",
    )
    advertise_address: str | None = Field(
        None, description="host:port other gateways on the database tell callers to use for this one's runs; "
        "unset: the bound gRPC address",
    )
    gateway_lease_seconds: float = Field(
        15.0, ge=1, le=3600,
        description="how long a gateway's name stays held without a heartbeat (beats every third of it): "
        "after a host dies, another host may start a gateway of that name once it expires",
    )
    foreign_watch_poll_seconds: float = Field(
        0.2, gt=0, le=10,
        description="how often a WatchRun of a run another gateway owns reads its new events from the database",
    )
    pacing_per_second: int = Field(45, ge=1, le=49, description="outgoing IB messages per second (IB allows 50)")
    max_orders_per_run: int = Field(100, ge=1)
    max_request_bytes: int = Field(
        256 * 1024, ge=16 * 1024,
        description="largest request gRPC accepts (RESOURCE_EXHAUSTED beyond); a valid order is under 160 bytes",
    )
    # At most 10^9: with 4 decimals a quantity then has fewer than 15 digits, exact in a double.
    max_order_quantity: float = Field(
        DEFAULT_MAX_ORDER_QUANTITY, ge=0.0001, le=1_000_000_000, description="largest quantity of one order, in shares"
    )
    stock_currencies: tuple[str, ...] = Field(
        DEFAULT_CURRENCIES, min_length=1, description="currencies an order may name (IB's codes)"
    )
    stock_exchanges: tuple[str, ...] = Field(
        DEFAULT_EXCHANGES, min_length=1,
        description="exchanges an order may route to (IB's codes, SMART = IB's router); the rest are primary exchanges",
    )
    default_deadline_seconds: float = Field(60.0, gt=0)
    max_deadline_seconds: float = Field(3600.0, gt=0)
    heartbeat_seconds: float = Field(10.0, gt=0, description="WatchRun heartbeat when a stream is quiet")
    watcher_queue_events: int = Field(
        20_000, ge=1, description="events a watcher may lag behind before its stream ends with 'resume'"
    )
    max_watch_streams: int = Field(1000, ge=1, description="open WatchRun streams, all callers together")
    max_watch_streams_per_caller: int = Field(
        100, ge=1, description="open WatchRun streams of one caller (its name; the implicit local caller: its address)"
    )
    cancel_wait_seconds: float = Field(10.0, gt=0, description="how long a run's end waits for IB to answer cancels")
    reconcile_timeout_seconds: float = Field(15.0, gt=0, description="how long IB may stay quiet before a reconciliation it has not answered fails")
    commission_grace_seconds: float = Field(3.0, ge=0, description="how long a run's end waits for commissions")
    sim_account: str = Field("DU1234567", description="account of the built-in simulator")
    ib_time_zone: str = Field(
        "America/New_York",
        description="IANA zone of the TWS / IB Gateway login: execution times without a zone are in it",
    )
    # Accounts and pre-trade limits (server/engine/account_guard.py, server/engine/limits.py).
    paper_accounts: tuple[str, ...] = Field((), description="accounts paper runs may name; empty: any DU/DF IB reports")
    live_accounts: tuple[str, ...] = Field((), description="accounts live runs may name; empty: any live one IB reports")
    live_requires_confirmation: bool = Field(True, description='live runs must carry confirm_live = "LIVE"')
    paper_max_order_quantity: float | None = Field(None, gt=0, description="largest paper order, in shares")
    live_max_order_quantity: float | None = Field(None, gt=0, description="largest live order, in shares")
    paper_max_orders_per_run: int | None = Field(None, ge=1, description="most orders in one paper run")
    live_max_orders_per_run: int | None = Field(None, ge=1, description="most orders in one live run")
    symbol_allowlist: tuple[str, ...] = Field((), description="symbols runs may trade; empty: any not denied")
    symbol_denylist: tuple[str, ...] = Field((), description="symbols runs may never trade")
    max_runs_per_minute_per_caller: int | None = Field(None, ge=1, description="new runs one caller may start a minute")
    max_open_runs: int | None = Field(None, ge=1, description="runs RUNNING at once, all callers together")
    # Operations.
    metrics_listen: str | None = Field(
        None, description="host:port of the Prometheus metrics (HTTP, /metrics); unset: no metrics, no port"
    )
    metrics_allow_remote: bool = Field(
        False, description="serve metrics on a non-loopback address (plain HTTP, no credentials; warned at start)"
    )
    log_format: Literal["text", "json"] = Field("text", description="log lines as key=value text or JSON objects")
    log_levels: dict[str, str] = Field(
        default_factory=dict,
        description='level per component, e.g. {"execgw.server.ib" = "DEBUG", "execgw.journal" = "WARNING"}',
    )

    @field_validator("listen", "ib_paper", "ib_live", "metrics_listen", "advertise_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @field_validator("stock_currencies", "stock_exchanges")
    @classmethod
    def _ib_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        # Orders are upper-cased before they are compared with these.
        return tuple(code.strip().upper() for code in codes if code.strip())

    @field_validator("paper_accounts", "live_accounts", "symbol_allowlist", "symbol_denylist")
    @classmethod
    def _upper_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        # IB spells accounts in upper case; orders' symbols are upper-cased before comparison.
        return tuple(code.strip().upper() for code in codes if code.strip())

    @model_validator(mode="after")
    def _allowlists_match_their_endpoint(self) -> Settings:
        # A live account in paper_accounts (or the reverse) is a mistake that would only show
        # once IB reports it: refused at start-up.
        wrong = [f"paper_accounts: {a}" for a in self.paper_accounts if not is_paper_account(a)]
        wrong += [f"live_accounts: {a}" for a in self.live_accounts if is_paper_account(a)]
        if wrong:
            raise ValueError("paper accounts start DU/DF, live ones do not: " + ", ".join(wrong))
        return self

    @model_validator(mode="after")
    def _a_full_run_fits_a_request(self) -> Settings:
        # Else the largest run the settings allow would be refused by gRPC, unexplained.
        needed = REQUEST_OVERHEAD_BYTES + ORDER_BYTES * self.max_orders_per_run
        if self.max_request_bytes < needed:
            raise ValueError(
                f"max_request_bytes {self.max_request_bytes} cannot hold a run of max_orders_per_run "
                f"{self.max_orders_per_run} orders: at least {needed}"
            )
        return self

    @field_validator("ib_time_zone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        # Refused at start-up: a wrong zone would shift every stored trade_time by hours.
        return validate_zone_name(value)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_file: Path | None = None, **flags: Any) -> Settings:
    """Flags (None = not given) over EXECGW_* over the TOML file."""
    given = {key: value for key, value in flags.items() if value is not None}
    if config_file is None:
        return Settings(**given)
    if not config_file.is_file():
        raise FileNotFoundError(f"config file {config_file} does not exist")

    class FromFile(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": config_file})

    return FromFile(**given)
