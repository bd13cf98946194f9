"""Quantities, versions and stack settings: the small parsers everything else leans on."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modelfleet.manifest.problems import ManifestError
from modelfleet.manifest.quantities import cpu_problem, memory_problem, parse_quantity
from modelfleet.manifest.semver import Version, is_semver, label_safe
from modelfleet.stacks.settings import StackSettings


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Decimal("0.5")), ("2", Decimal(2)), ("1.5", Decimal("1.5")),
    ("1Gi", Decimal(2**30)), ("512Mi", Decimal(2**29)), ("1k", Decimal(1000)),
    ("1e3", Decimal(1000)), (".5", Decimal("0.5")), (4, Decimal(4)),
])
def test_quantities_parse_like_kubernetes(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["2cores", "Gi", "1.2.3", "-", "1 Gi", "1GB"])
def test_bad_quantities_are_refused(text: str) -> None:
    assert cpu_problem(text) is not None


def test_cpu_finer_than_a_millicore_is_refused() -> None:
    assert cpu_problem("0.0001") == "'0.0001' is finer than 1m, the smallest CPU unit " \
                                    "Kubernetes accepts"
    assert cpu_problem("0") == "must be more than 0 (got 0)"


def test_memory_without_unit_is_refused() -> None:
    assert memory_problem("512") == "'512' is less than 1Mi; give a unit, e.g. '512Mi'"
    assert memory_problem("2Gi") is None


@pytest.mark.parametrize("text", ["1.0.0", "0.9.0-rc.2", "1.0.0+build.5", "10.20.30-alpha.1+x"])
def test_semver_accepts(text: str) -> None:
    assert is_semver(text)
    assert str(Version.parse(text)) == text


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01"])
def test_semver_refuses(text: str) -> None:
    assert not is_semver(text)


def test_label_safe_version_has_no_plus() -> None:
    assert label_safe("1.0.0+build.5") == "1.0.0_build.5"


def test_settings_parse_full_keys_and_pulumi_booleans() -> None:
    settings = StackSettings.parse({
        "aws:region": "eu-west-1",
        "modelfleet:environment": "prod",
        "modelfleet:namespace": "risk-prod",
        "modelfleet:team": "risk",
        "modelfleet:requireApproved": "true",
        "modelfleet:manifestRef": "v2026.11.1",
        "modelfleet:oidcProviderUrl": "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC",
        "modelfleet:oidcProviderArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks."
                                      "eu-west-1.amazonaws.com/id/ABC",
        "modelfleet:allowedNamespaces": '["gateway", "monitoring"]',
        "modelfleet:gpuNodeSelector": "node.kubernetes.io/instance-type=g5.xlarge",
    }, "stacks/Pulumi.risk-prod.yaml")
    assert (settings.environment, settings.team, settings.require_approved) == (
        "prod", "risk", True)
    assert settings.manifest == "models.yaml"
    assert settings.manifest_ref == "v2026.11.1"
    assert settings.oidc_provider_url == "oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    assert settings.allowed_namespaces == ("gateway", "monitoring")
    assert settings.gpu_node_selector == (("node.kubernetes.io/instance-type", "g5.xlarge"),)
    assert settings.keda is True


def test_settings_take_lists_as_comma_separated_text() -> None:
    settings = StackSettings.parse({
        "environment": "dev", "namespace": "models", "oidcProviderArn": "arn",
        "oidcProviderUrl": "issuer", "allowedNamespaces": "gateway, monitoring",
        "keda": "false"}, "x")
    assert settings.allowed_namespaces == ("gateway", "monitoring")
    assert settings.keda is False


def test_settings_report_every_problem_with_its_key() -> None:
    with pytest.raises(ManifestError) as error:
        StackSettings.parse({"modelfleet:requireApproved": "sometimes",
                             "modelfleet:team": "Risk", "modelfleet:oidcProviderArn": "arn",
                             "modelfleet:oidcProviderUrl": "issuer"}, "stacks/Pulumi.x.yaml")
    assert [str(p) for p in error.value.problems] == [
        "stacks/Pulumi.x.yaml: modelfleet:environment: is required; set it with "
        "`pulumi config set modelfleet:environment <value>`",
        "stacks/Pulumi.x.yaml: modelfleet:namespace: is required; set it with "
        "`pulumi config set modelfleet:namespace <value>`",
        "stacks/Pulumi.x.yaml: modelfleet:team: 'Risk' is not a DNS label (lowercase letters, "
        "digits, '-')",
        "stacks/Pulumi.x.yaml: modelfleet:requireApproved: must be true or false, got "
        "'sometimes'",
    ]
