"""Resolution: defaults and overrides merged into each model, then filtered and gated."""

from __future__ import annotations

import pytest

from modelfleet.manifest.parse import parse_manifest
from modelfleet.manifest.problems import ManifestError
from modelfleet.manifest.resolve import Resolution, resolve

DIGEST = "b" * 64
MANIFEST = f"""\
apiVersion: modelfleet/v1
defaults:
  serving:
    replicas: {{min: 2, max: 10}}
    resources: {{cpu: 500m, memory: 1Gi}}
    env: {{LOG_LEVEL: info}}
  batch:
    maxWorkers: 8
models:
  - name: fraud
    team: risk
    version: 1.4.2
    stage: approved
    artifact: {{uri: "s3://training/fraud/model.joblib"}}
    image: {{ref: "registry.example/fraud@sha256:{DIGEST}"}}
    serving:
      resources: {{cpu: "1"}}
    environments:
      prod:
        serving: {{replicas: {{min: 3, max: 30}}}}
      dev:
        version: 1.5.0-rc.1
        stage: candidate
        artifact: {{path: .}}
  - name: churn
    team: growth
    version: 2.0.0
    stage: candidate
    artifact: {{uri: "s3://training/churn/model.joblib"}}
    image: {{ref: "registry.example/churn@sha256:{DIGEST}"}}
    batch: {{minWorkers: 1}}
"""


def resolved(environment: str | None = None, text: str = MANIFEST) -> Resolution:
    return resolve(parse_manifest(text, "models.yaml"), environment)


def by_name(resolution: Resolution) -> dict[str, object]:
    return {model.name: model for model in resolution.models}


def test_defaults_merge_under_the_model_field_by_field() -> None:
    fraud = resolved().models[0]
    assert fraud.serving is not None
    assert fraud.serving.resources.cpu == "1"          # the model's own
    assert fraud.serving.resources.memory == "1Gi"     # from defaults
    assert fraud.serving.replicas.max == 10            # from defaults
    assert fraud.serving.env == {"LOG_LEVEL": "info"}  # from defaults
    assert fraud.serving.port == 8080                  # built-in default


def test_environment_override_merges_over_the_model() -> None:
    prod = resolved("prod").models[0]
    assert prod.serving is not None
    assert (prod.serving.replicas.min, prod.serving.replicas.max) == (3, 30)
    assert prod.serving.resources.cpu == "1"


def test_environment_override_replaces_an_exclusive_key_instead_of_adding_to_it() -> None:
    dev = resolved("dev").models[0]
    assert dev.version == "1.5.0-rc.1"
    assert dev.artifact.path == "."
    assert dev.artifact.uri is None


def test_defaults_of_a_section_do_not_give_a_model_that_section() -> None:
    models = resolved().models
    fraud, churn = models
    assert fraud.batch is None, "defaults.batch must not turn a serving model into a worker"
    assert churn.serving is None, "defaults.serving must not give a batch model an endpoint"
    assert churn.batch is not None
    assert (churn.batch.min_workers, churn.batch.max_workers) == (1, 8)


def test_an_environment_without_overrides_gets_the_base_model() -> None:
    assert resolved("staging").models == resolved().models


def test_team_filter_keeps_one_teams_models() -> None:
    assert [m.name for m in resolved().select(team="growth").models] == ["churn"]


def test_team_filter_that_matches_nothing_is_refused() -> None:
    with pytest.raises(ManifestError) as error:
        resolved().select(team="vision")
    assert str(error.value.problems[0]) == (
        "models.yaml: no model belongs to team 'vision' (teams in the manifest: growth, risk); "
        "a stack that would deploy nothing is refused rather than emptied")


def test_require_approved_refuses_candidates_naming_the_line() -> None:
    with pytest.raises(ManifestError) as error:
        resolved("prod").select(require_approved=True)
    assert [str(p) for p in error.value.problems] == [
        "models.yaml:28: model 'churn' (environment 'prod'): stage: is 'candidate', but this "
        "stack deploys approved models only; set `stage: approved` once the model has passed "
        "review"]


def test_require_approved_sees_a_stage_set_by_an_override() -> None:
    with pytest.raises(ManifestError) as error:
        resolved("dev").select(team="risk", require_approved=True)
    assert error.value.problems[0].line == 23  # environments.dev.stage


def test_require_approved_passes_approved_models() -> None:
    assert [m.name for m in resolved("prod").select("risk", True).models] == ["fraud"]


def test_a_bare_section_key_means_enabled_with_defaults() -> None:
    text = MANIFEST.replace("batch: {minWorkers: 1}", "batch:")
    churn = resolved(text=text).models[1]
    assert churn.batch is not None
    assert churn.batch.max_workers == 8


def test_resolution_refuses_an_invalid_manifest_entirely() -> None:
    text = MANIFEST.replace("maxWorkers: 8", "maxWorkers: 0")
    with pytest.raises(ManifestError) as error:
        resolved(text=text)
    assert [str(p) for p in error.value.problems] == [
        "models.yaml:8: defaults.batch.maxWorkers: must be at least 1, got 0",
        "models.yaml:31: model 'churn': batch: minWorkers (1) is greater than maxWorkers (0)"]
