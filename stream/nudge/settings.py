"""The nudge service's own settings (``ESN_NUDGE_*``): where its rules are and how it reaches
the SMTP server; the SMTP password is a SecretStr, never printed. Kafka and Redis come from
the shared :class:`stream.settings.Settings`."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class NudgeSettings(BaseSettings):
    """Each field maps to ``ESN_NUDGE_<FIELD_NAME>`` (docs/operations/nudges.md)."""

    model_config = SettingsConfigDict(env_prefix="ESN_NUDGE_", frozen=True, extra="ignore")

    rules_file: str = Field("nudge-rules.toml", description="The rules file (TOML).")
    smtp_host: str = Field("127.0.0.1", description="SMTP server (submission).")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    smtp_starttls: bool = Field(True, description="Upgrade with STARTTLS before anything else.")
    smtp_tls_cafile: str = Field("", description="CA bundle for the SMTP server; empty: system.")
    smtp_username: str = Field("", description="SMTP AUTH user; empty: no AUTH.")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP AUTH password.")
    smtp_password_file: str = Field(
        "", description="A file holding the SMTP password (a Compose or Kubernetes secret)."
    )
    smtp_from: str = Field("esn-pulse@localhost", description="The From address of nudges.")
    smtp_timeout_seconds: float = Field(30.0, gt=0, description="Per SMTP command.")
    webhook_timeout_seconds: float = Field(15.0, gt=0, description="Per webhook request.")
    poll_seconds: float = Field(5.0, gt=0, description="How often due deliveries are looked at.")
    lease_seconds: float = Field(
        120.0, gt=0, description="How long a send may take before it counts as cut off."
    )
    metrics_port: int = Field(0, ge=0, description="Port of the service's /metrics; 0: none.")
    metrics_host: str = Field("127.0.0.1", description="Interface of /metrics.")

    def password(self) -> str:
        """The SMTP password: the file's first line when a file is named, else the setting."""
        if self.smtp_password_file:
            with open(self.smtp_password_file, encoding="utf-8") as secret:
                return secret.readline().strip()
        return self.smtp_password.get_secret_value()
