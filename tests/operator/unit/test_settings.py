"""Operator settings: read from the environment at start-up, bad values refused by name."""

from __future__ import annotations

import pytest

from bespoke_operator.settings import OperatorSettings


def test_defaults_when_nothing_is_set() -> None:
    settings = OperatorSettings.from_env({})
    assert settings == OperatorSettings()
    assert settings.resync_interval_seconds == 10 * settings.reconcile_interval_seconds
    assert settings.trainer_image.startswith("ghcr.io/bespoke-dev/bespoke-trainer:")


def test_the_environment_overrides_and_the_resync_follows_the_interval() -> None:
    settings = OperatorSettings.from_env(
        {
            "BESPOKE_RECONCILE_INTERVAL_SECONDS": "3",
            "BESPOKE_METRICS_PORT": "0",
            "BESPOKE_SERVING_IMAGE": "registry.example/serving:1",
            "BESPOKE_RETRY_CAP_SECONDS": "120",
            "KUBECONFIG": "/tmp/config",
        }
    )
    assert settings.reconcile_interval_seconds == 3
    assert settings.resync_interval_seconds == 30
    assert settings.metrics_port == 0
    assert settings.serving_image == "registry.example/serving:1"
    assert settings.retry_cap_seconds == 120
    assert settings.kubeconfig == "/tmp/config"


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_value_is_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match=f"BESPOKE_RESYNC_INTERVAL_SECONDS={value!r}"):
        OperatorSettings.from_env({"BESPOKE_RESYNC_INTERVAL_SECONDS": value})


def test_leader_election_reads_its_lease_and_refuses_timings_that_could_overlap() -> None:
    settings = OperatorSettings.from_env(
        {"BESPOKE_LEADER_ELECTION": "true", "BESPOKE_OPERATOR_NAMESPACE": "bespoke-system"}
    )
    assert settings.leader_election
    assert (settings.lease_namespace, settings.lease_name) == ("bespoke-system", "bespoke-operator")
    with pytest.raises(ValueError, match="BESPOKE_LEADER_ELECTION_NAMESPACE"):
        OperatorSettings.from_env({"BESPOKE_LEADER_ELECTION": "1"})
    with pytest.raises(ValueError, match="RENEW_DEADLINE_SECONDS \\(20\\) < "):
        OperatorSettings.from_env({"BESPOKE_LEASE_RENEW_DEADLINE_SECONDS": "20"})
    with pytest.raises(ValueError, match="BESPOKE_LEADER_ELECTION='maybe'"):
        OperatorSettings.from_env({"BESPOKE_LEADER_ELECTION": "maybe"})


@pytest.mark.parametrize(
    "name",
    [
        "BESPOKE_RECONCILE_INTERVAL_SECONDS",
        "BESPOKE_RESYNC_INTERVAL_SECONDS",
        "BESPOKE_RETRY_BASE_SECONDS",
        "BESPOKE_RETRY_CAP_SECONDS",
    ],
)
def test_an_interval_of_zero_is_refused_naming_the_variable(name: str) -> None:
    with pytest.raises(ValueError, match=f"{name}='0': expected more than 0 seconds"):
        OperatorSettings.from_env({name: "0"})


def test_a_retry_cap_below_the_base_is_refused_naming_both() -> None:
    with pytest.raises(
        ValueError, match="BESPOKE_RETRY_CAP_SECONDS \\(5\\) is below BESPOKE_RETRY_BASE"
    ):
        OperatorSettings.from_env(
            {"BESPOKE_RETRY_BASE_SECONDS": "10", "BESPOKE_RETRY_CAP_SECONDS": "5"}
        )
    # A base above the default cap raises the cap with it when the cap is not set.
    settings = OperatorSettings.from_env({"BESPOKE_RETRY_BASE_SECONDS": "600"})
    assert settings.retry_cap_seconds == 600
