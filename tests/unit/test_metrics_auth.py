"""The basic auth check of the worker's /metrics, as pure logic."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr, ValidationError

from stream.metrics_auth import basic_auth_check
from stream.prometheus_local import local_config
from stream.settings import Settings


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def guarded() -> Settings:
    return Settings(metrics_username="prom", metrics_password=SecretStr("pä:ss"))


class TestBasicAuthCheck:
    def test_unset_leaves_metrics_open(self) -> None:
        """No ESN_METRICS_USERNAME: no check at all."""
        assert basic_auth_check(Settings()) is None

    def test_only_the_exact_pair_passes(self) -> None:
        """The right user and password (a colon in the password included) pass, nothing else."""
        check = basic_auth_check(guarded())
        assert check is not None
        assert check(header("prom", "pä:ss"))
        assert check("basic " + header("prom", "pä:ss").split(" ", 1)[1]), "scheme is caseless"
        for bad in (None, "", header("prom", "pä:s"), header("Prom", "pä:ss"),
                    header("prom", "pä:ss "), "Basic", "Basic %%%", "Bearer x",
                    "Basic " + base64.b64encode(b"prom").decode()):  # fmt: skip
            assert not check(bad), bad

    @pytest.mark.parametrize(
        "given", [{"metrics_username": "prom"}, {"metrics_password": SecretStr("x")}]
    )
    def test_one_without_the_other_is_refused(self, given: dict[str, object]) -> None:
        """A user without a password (or the reverse) is a setting error, not an open page."""
        with pytest.raises(ValidationError, match="ESN_METRICS_USERNAME"):
            Settings(**given)  # type: ignore[arg-type]

    def test_the_password_never_prints(self) -> None:
        """Neither the settings' repr nor str shows it."""
        assert "pä:ss" not in repr(guarded()) and "pä:ss" not in str(guarded())


class TestLocalPrometheusConfig:
    def test_credentials_follow_the_settings(self) -> None:
        """With credentials the scrape job has basic_auth; without, the shipped one is removed."""
        (job,) = local_config({"x": ["127.0.0.1:1"]}, "1s", settings=guarded())["scrape_configs"]
        assert {"username": "prom", "password": "pä:ss"} == job["basic_auth"]
        (job,) = local_config({"x": ["127.0.0.1:1"]}, "1s", settings=Settings())["scrape_configs"]
        assert "basic_auth" not in job
