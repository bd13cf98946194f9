"""Typos that used to pass silently: an override no stack deploys, a misspelt stack key or
region, an empty artifact folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from modelfleet.manifest.problems import ManifestError
from modelfleet.stacks.settings import StackSettings

REF = "registry.example/fraud@sha256:" + "e" * 64
PROJECT_FILE = "name: modelfleet\nruntime: python\nstackConfigDir: stacks\n"
STACK = """\
config:
  aws:region: {region}
  modelfleet:environment: {environment}
  modelfleet:namespace: models
  modelfleet:oidcProviderArn: arn:aws:iam::123456789012:oidc-provider/example
  modelfleet:oidcProviderUrl: oidc.example/id/1
"""
MANIFEST = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.0.0
    artifact: {{uri: "s3://training/fraud/model"}}
    image: {{ref: "{REF}"}}
    batch: {{}}
    environments:
      prodd:
        batch: {{maxWorkers: 40}}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(PROJECT_FILE)
    (tmp_path / "stacks").mkdir()
    for environment in ("dev", "prod"):
        (tmp_path / f"stacks/Pulumi.{environment}.yaml").write_text(
            STACK.format(region="eu-west-1", environment=environment))
    (tmp_path / "models.yaml").write_text(MANIFEST)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_override_no_stack_deploys_warns_with_did_you_mean(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate")
    assert code == 0
    assert out == "models.yaml: valid, 1 model; environments checked: prodd\n"
    assert err == ("warning: models.yaml:10: model 'fraud': environments.prodd: no stack deploys "
                   "environment 'prodd' (the stacks deploy dev, prod), so this override never "
                   "applies; did you mean 'prod'?\n")


def test_validate_strict_fails_on_an_override_no_stack_deploys(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", "--strict")
    assert code == 1
    assert out == ""
    assert err.splitlines()[-1] == "1 warning and --strict: models.yaml is refused"
    (project / "models.yaml").write_text(MANIFEST.replace("prodd:", "prod:"))
    assert run(capsys, "validate", "--strict") == (
        0, "models.yaml: valid, 1 model; environments checked: prod\n", "")


def test_the_pull_request_workflow_validates_strictly() -> None:
    workflow = Path(__file__).parent.parent / ".github/workflows/preview.yml"
    assert "modelfleet validate --strict models.yaml" in workflow.read_text()


def test_an_unknown_modelfleet_stack_key_is_an_error_with_did_you_mean() -> None:
    with pytest.raises(ManifestError) as error:
        StackSettings.parse({"modelfleet:environment": "dev", "modelfleet:namespace": "models",
                             "modelfleet:oidcProviderArn": "arn", "modelfleet:oidcProviderUrl":
                             "issuer", "modelfleet:requireAproved": "true"},
                            "stacks/Pulumi.prod.yaml")
    assert [str(p) for p in error.value.problems] == [
        "stacks/Pulumi.prod.yaml: modelfleet:requireAproved: unknown key: modelfleet reads no "
        "such setting; did you mean 'modelfleet:requireApproved'?"]


def test_plan_names_the_line_of_a_misspelt_stack_key_and_region(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = project / "stacks/Pulumi.dev.yaml"
    stack.write_text(STACK.format(region="eu-west1", environment="dev")
                     + "  modelfleet:namspace: other\n")
    code, _, err = run(capsys, "plan", "--stack", "dev")
    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("stacks/Pulumi.dev.yaml:2: aws:region: 'eu-west1' is not an AWS "
                               "region botocore ")
    assert lines[0].endswith(" knows; did you mean 'eu-west-1'?")
    assert lines[-1] == "1 problem; nothing was planned"
    stack.write_text(STACK.format(region="eu-west-1", environment="dev")
                     + "  modelfleet:namspace: other\n")
    code, _, err = run(capsys, "plan", "--stack", "dev")
    assert code == 1
    assert err.splitlines() == [
        "stacks/Pulumi.dev.yaml:7: modelfleet:namspace: unknown key: modelfleet reads no such "
        "setting; did you mean 'modelfleet:namespace'?",
        "1 problem; nothing was planned"]


@pytest.mark.parametrize("where", ["model", "candidate"])
def test_an_empty_artifact_folder_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str) -> None:
    (tmp_path / "artifacts/fraud/empty-subfolder").mkdir(parents=True)
    artifact = ("{path: artifacts/fraud}" if where == "model"
                else '{uri: "s3://training/fraud/model"}')
    candidate = ("" if where == "model" else
                 "      candidates:\n        - {name: next, version: 1.1.0, weight: 10, "
                 "artifact: {path: artifacts/fraud}}\n")
    (tmp_path / "models.yaml").write_text(f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: 1.0.0
    artifact: {artifact}
    image: {{ref: "{REF}"}}
    serving:
      port: 8080
{candidate}""")
    code, _, err = run(capsys, "validate", str(tmp_path / "models.yaml"))
    assert code == 1
    assert "artifact.path: 'artifacts/fraud' is an empty folder: there is no file to upload" \
        in err.splitlines()[0]
    (tmp_path / "artifacts/fraud/empty-subfolder/model.joblib").write_bytes(b"weights")
    assert run(capsys, "validate", str(tmp_path / "models.yaml"))[0] == 0
