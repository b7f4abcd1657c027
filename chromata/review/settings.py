"""The review app's settings: one frozen object, validated before the app starts (an insecure secret is
refused outside local mode)."""

from __future__ import annotations

from dataclasses import dataclass

from chromata.errors import ConfigError

INSECURE_SECRETS = {"", "change-me", "secret", "dev", "local-development-only"}


@dataclass(frozen=True)
class AppSettings:
    db_url: str
    outputs: str  # local folder or s3:// URI of the derivatives: the run's destination, wherever it is now
    secret_key: str = "local-development-only"
    mode: str = "local"  # "local" (laptop, http) or "production" (https, strong secret required)
    endpoint_url: str | None = None
    lease_seconds: float = 900.0
    session_hours: float = 12.0
    preview_max: int = 2048
    metrics_token: str | None = None
    login_attempts: int = 5  # per (client, username) per window
    login_window_seconds: float = 300.0

    @property
    def secure_cookies(self) -> bool:
        return self.mode == "production"

    def validate(self) -> None:
        if self.mode not in ("local", "production"):
            raise ConfigError("mode must be local or production")
        if self.mode != "local" and (self.secret_key in INSECURE_SECRETS or len(self.secret_key) < 32):
            raise ConfigError(
                "refusing to start outside local mode with an insecure secret key: set CHROMATA_SECRET_KEY "
                "to at least 32 random characters (e.g. openssl rand -hex 32)"
            )
