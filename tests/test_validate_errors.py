"""Bad manifests: each fails `validate`, exit 1, with file, line, model and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main

DIGEST = "a" * 64
GOOD_MODEL = f"""\
  - name: fraud
    team: risk
    version: 1.4.2
    artifact: {{uri: "s3://training-output/fraud/model.joblib"}}
    image: {{ref: "registry.example/fraud@sha256:{DIGEST}"}}
    serving: {{}}
"""


def validate(tmp_path: Path, text: str, *args: str,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    (tmp_path / "models.yaml").write_text(text, encoding="utf-8")
    code = main(["validate", str(tmp_path / "models.yaml"), *args])
    out, err = capsys.readouterr()
    return code, out, err.replace(str(tmp_path) + "/", "")


CASES = {
    "yaml syntax error": (
        "apiVersion: modelfleet/v1\nmodels:\n  - name: [fraud\n",
        ["models.yaml:4: invalid YAML: expected ',' or ']', but got '<stream end>'"],
    ),
    "missing apiVersion": (
        "models:\n" + GOOD_MODEL,
        ["models.yaml:1: apiVersion: is required"],
    ),
    "wrong apiVersion": (
        "apiVersion: modelfleet/v2\nmodels:\n" + GOOD_MODEL,
        ["models.yaml:1: apiVersion: 'modelfleet/v2' is not a format this modelfleet reads; "
         "use 'modelfleet/v1'"],
    ),
    "unknown top-level key": (
        "apiVersion: modelfleet/v1\nmodel:\n" + GOOD_MODEL,
        ["models.yaml:2: model: unknown key 'model'; did you mean 'models'?",
         "models.yaml:1: models: is required"],
    ),
    "unknown key in a model": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL + "    serving_port: 8080\n",
        ["models.yaml:9: model 'fraud': serving_port: unknown key 'serving_port'; "
         "did you mean 'serving'?"],
    ),
    "unknown key in defaults": (
        "apiVersion: modelfleet/v1\ndefaults:\n  serving:\n    replicas: {minimum: 2}\n"
        "models:\n" + GOOD_MODEL,
        ["models.yaml:4: defaults.serving.replicas.minimum: unknown key 'minimum'; "
         "did you mean 'min'?"],
    ),
    "unknown key in an environment override": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL
        + "    environments:\n      prod:\n        serving: {replicaz: {max: 3}}\n",
        ["models.yaml:11: model 'fraud': environments.prod.serving.replicaz: unknown key "
         "'replicaz'; did you mean 'replicas'?"],
    ),
    "duplicate model names": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL + GOOD_MODEL,
        ["models.yaml:9: model 'fraud': name: name is already used by the model at line 3; "
         "model names must be unique"],
    ),
    "name that is not a DNS label": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace("name: fraud", "name: Fraud_1"),
        ["models.yaml:3: model 'Fraud_1': name: 'Fraud_1' is not a DNS label: lowercase "
         "letters, digits and '-', starting with a letter and ending with a letter or digit"],
    ),
    "name too long for derived resource names": (
        "apiVersion: modelfleet/v1\nmodels:\n"
        + GOOD_MODEL.replace("name: fraud", "name: " + "f" * 41),
        [f"models.yaml:3: model '{'f' * 41}': name: '{'f' * 41}' is 41 characters; at most 40"],
    ),
    "version that is not semver": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace("1.4.2", "v1.4"),
        ["models.yaml:5: model 'fraud': version: 'v1.4' is not a semantic version "
         "(MAJOR.MINOR.PATCH, e.g. 1.4.2)"],
    ),
    "version that YAML reads as a number": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace("1.4.2", "1.4"),
        ["models.yaml:5: model 'fraud': version: must be a string, got 1.4, which YAML reads "
         "as a number; put it in quotes"],
    ),
    "unknown stage": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL + "    stage: aproved\n",
        ["models.yaml:9: model 'fraud': stage: must be 'candidate' or 'approved', got 'aproved'"],
    ),
    "artifact with both uri and path": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}',
            '{uri: "s3://training-output/fraud/model.joblib", path: model/}'),
        ["models.yaml:6: model 'fraud': artifact.path: give either `uri` or `path`, not both"],
    ),
    "artifact with neither uri nor path": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}', f'{{sha256: "{DIGEST}"}}'),
        ["models.yaml:6: model 'fraud': artifact: give `uri` or `path`"],
    ),
    "artifact uri that is not S3": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "s3://training-output/fraud/model.joblib", "https://example.com/model"),
        ["models.yaml:6: model 'fraud': artifact.uri: 'https://example.com/model' is not an "
         "S3 URI of the form s3://bucket/key"],
    ),
    "artifact uri carrying a version query": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "model.joblib", "model.joblib?versionId=3HL4kqtJlcpXroDTDmJ"),
        ["models.yaml:6: model 'fraud': artifact.uri: 's3://training-output/fraud/"
         "model.joblib?versionId=3HL4kqtJlcpXroDTDmJ' carries a query or fragment, which S3 "
         "would read as part of the key; give the key only and pin an object version with "
         "`artifact.versionId`"],
    ),
    "artifact uri with a fragment": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "model.joblib", "model.joblib#v2"),
        ["models.yaml:6: model 'fraud': artifact.uri: 's3://training-output/fraud/"
         "model.joblib#v2' carries a query or fragment"],
    ),
    "run input carrying a version query": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "batch:\n      runs:\n        - {id: nightly, partitions: 2, "
            "input: \"s3://exports/day.jsonl?versionId=abc\"}"),
        ["models.yaml:10: model 'fraud': batch.runs[0].input: 's3://exports/day.jsonl?"
         "versionId=abc' carries a query or fragment, which S3 would read as part of the key; "
         "give the key or prefix only"],
    ),
    "version pin on a prefix": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}',
            '{uri: "s3://training-output/fraud/", versionId: "3HL4kqtJlcpXroDTDmJ"}'),
        ["models.yaml:6: model 'fraud': artifact.versionId: pins one object, but "
         "'s3://training-output/fraud/' is a prefix; name the object in `uri`"],
    ),
    "version pin with an uploaded path": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}',
            '{path: models.yaml, versionId: "3HL4kqtJlcpXroDTDmJ"}'),
        ["models.yaml:6: model 'fraud': artifact.versionId: pins an S3 object version, so it "
         "needs `uri`; an uploaded `path` is versioned by the model's version"],
    ),
    "version pin that is too long": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            'model.joblib"}', 'model.joblib", versionId: "' + "v" * 1025 + '"}'),
        ["models.yaml:6: model 'fraud': artifact.versionId: is 1025 characters; an S3 "
         "version ID has at most 1024"],
    ),
    "version pin with spaces": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            'model.joblib"}', 'model.joblib", versionId: "not a version"}'),
        ["models.yaml:6: model 'fraud': artifact.versionId: 'not a version' is not an S3 "
         "version ID"],
    ),
    "version pin that is a number": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            'model.joblib"}', 'model.joblib", versionId: 12}'),
        ["models.yaml:6: model 'fraud': artifact.versionId: "],
    ),
    "sha256 of the wrong format": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            'model.joblib"}', 'model.joblib", sha256: "9F2C"}'),
        ["models.yaml:6: model 'fraud': artifact.sha256: '9F2C' is not a sha256 digest "
         "(64 lowercase hex digits)"],
    ),
    "image with both build and ref": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "image: {ref:", "image: {build: {context: images/x}, ref:"),
        ["models.yaml:7: model 'fraud': image.ref: give either `build` or `ref`, not both"],
    ),
    "image ref without a digest": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            f"@sha256:{DIGEST}", ":1.4.2"),
        ["models.yaml:7: model 'fraud': image.ref: 'registry.example/fraud:1.4.2' is not "
         "pinned by digest; append @sha256:<digest> (a tag can be moved, a digest cannot)"],
    ),
    "cpu that is not a quantity": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {resources: {cpu: 2cores}}"),
        ["models.yaml:8: model 'fraud': serving.resources.cpu: '2cores' is not a Kubernetes "
         "quantity (e.g. 500m, 2, 1.5Gi)"],
    ),
    "memory in millibytes": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {resources: {memory: 512m}}"),
        ["models.yaml:8: model 'fraud': serving.resources.memory: '512m' means 0.512 bytes "
         "(m is milli); did you mean '512Mi'?"],
    ),
    "fractional gpu": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {resources: {gpu: 0.5}}"),
        ["models.yaml:8: model 'fraud': serving.resources.gpu: must be a whole number of GPUs, "
         "0 or more (got 0.5)"],
    ),
    "replicas min above max": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving:\n      replicas: {min: 12, max: 10}"),
        ["models.yaml:9: model 'fraud': serving.replicas: min (12) is greater than max (10)"],
    ),
    "negative workers": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "batch: {minWorkers: -1}"),
        ["models.yaml:8: model 'fraud': batch.minWorkers: must be at least 0, got -1"],
    ),
    "workers min above max": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "batch: {minWorkers: 5, maxWorkers: 2}"),
        ["models.yaml:8: model 'fraud': batch: minWorkers (5) is greater than maxWorkers (2)"],
    ),
    "privileged port": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {port: 80}"),
        ["models.yaml:8: model 'fraud': serving.port: must be at least 1024, got 80"],
    ),
    "port out of range": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {port: 70000}"),
        ["models.yaml:8: model 'fraud': serving.port: must be at most 65535, got 70000"],
    ),
    "percentage out of range": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {targetCPUUtilization: 150}"),
        ["models.yaml:8: model 'fraud': serving.targetCPUUtilization: must be at most 100, "
         "got 150"],
    ),
    "neither serving nor batch": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace("    serving: {}\n", ""),
        ["models.yaml:3: model 'fraud': has neither `serving` nor `batch`; give one or both"],
    ),
    "artifact path that does not exist": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}', "{path: artifacts/fraud}"),
        ["models.yaml:6: model 'fraud': artifact.path: 'artifacts/fraud' does not exist "
         "(relative to the manifest's folder)"],
    ),
    "build context that does not exist": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            f'{{ref: "registry.example/fraud@sha256:{DIGEST}"}}',
            "{build: {context: images/nope}}"),
        ["models.yaml:7: model 'fraud': image.build.context: 'images/nope' is not a folder "
         "(relative to the manifest's folder)"],
    ),
    "dockerfile that does not exist": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            f'{{ref: "registry.example/fraud@sha256:{DIGEST}"}}',
            "{build: {context: ., dockerfile: images/gpu.Dockerfile}}"),
        ["models.yaml:7: model 'fraud': image.build.dockerfile: 'images/gpu.Dockerfile' does "
         "not exist"],
    ),
    "build arg that YAML reads as a number": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            f'{{ref: "registry.example/fraud@sha256:{DIGEST}"}}',
            "{build: {context: ., args: {PYTHON_VERSION: 3.10}}}"),
        ["models.yaml:7: model 'fraud': image.build.args.PYTHON_VERSION: must be a string, "
         "got 3.1, which YAML reads as a number; put it in quotes"],
    ),
    "environment variable modelfleet sets itself": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving: {env: {MODEL_URI: s3://elsewhere/x}}"),
        ["models.yaml:8: model 'fraud': serving.env: 'MODEL_URI' is set by modelfleet and "
         "cannot be overridden"],
    ),
    "duplicate key": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL + "    serving: {port: 9000}\n",
        ["models.yaml:9: models[0]: duplicate key 'serving' (first given at line 8)"],
    ),
    "duplicate run ids": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "batch:\n      runs:\n"
            "        - {id: nightly, input: 's3://in/a/', partitions: 2}\n"
            "        - {id: nightly, input: 's3://in/b/', partitions: 2}"),
        ["models.yaml:11: model 'fraud': batch.runs[1].id: 'nightly' is used by another run "
         "of this model"],
    ),
    "run parallelism above its partitions": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "batch:\n      runs:\n"
            "        - {id: nightly, input: 's3://in/a/', partitions: 2, parallelism: 8}"),
        ["models.yaml:10: model 'fraud': batch.runs[0].parallelism: 8 is more than the 2 "
         "partitions"],
    ),
    "run whose Job name is too long": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "batch:\n      runs:\n"
            f"        - {{id: {'r' * 60}, input: 's3://in/a/', partitions: 2}}"),
        [f"models.yaml:10: model 'fraud': batch.runs[0].id: the Job name 'fraud-{'r' * 60}' is "
         "longer than 63 characters; shorten the id"],
    ),
    "an override that breaks a bound only in one environment": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            "serving: {}", "serving:\n      replicas: {min: 2, max: 4}")
        + "    environments:\n      prod:\n        serving: {replicas: {min: 6}}\n",
        ["models.yaml:12: model 'fraud' (environment 'prod'): serving.replicas: min (6) is "
         "greater than max (4)"],
    ),
    "pinned files: a key outside the prefix, a key twice, a single-object pin beside them": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}',
            f'{{uri: "s3://weights/llm/", sha256: {DIGEST}, files: [\n'
            f'      {{path: config.json, sha256: {DIGEST}, size: 10}},\n'
            f'      {{path: ../secrets.json, sha256: {DIGEST}, size: 10}},\n'
            f'      {{path: config.json, sha256: {DIGEST}, size: 10}}]}}'),
        ["models.yaml:6: model 'fraud': artifact.sha256: give either `sha256` or `files`, "
         "not both: each file carries its own",
         "models.yaml:8: model 'fraud': artifact.files[1].path: '../secrets.json' is outside "
         "the artifact's prefix; give the key below `uri` (no leading '/', no '.' or '..' "
         "segments, no empty segments)",
         "models.yaml:9: model 'fraud': artifact.files[2].path: 'config.json' is listed twice"],
    ),
    "pinned files on one object, not a prefix": (
        "apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
            '{uri: "s3://training-output/fraud/model.joblib"}',
            f'{{uri: "s3://weights/llm/model.bin", files: [{{path: a, sha256: {DIGEST}, '
            'size: 1}]}'),
        ["models.yaml:6: model 'fraud': artifact.files: lists the objects of a prefix, but "
         "'s3://weights/llm/model.bin' names one object; end `uri` with '/'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_fails_with_a_located_message(case: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = CASES[case]
    code, out, err = validate(tmp_path, text, capsys=capsys)
    assert code == 1
    assert out == ""
    for message in expected:
        assert message in err.splitlines() or any(
            line.startswith(message) for line in err.splitlines()), err
    assert "Traceback" not in err
    assert err.rstrip().endswith("nothing was done")


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    text = f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: "1.4"
    stage: approved
    artifact: {{uri: "s3://training-output/fraud/model.joblib"}}
    image: {{ref: "registry.example/fraud:latest"}}
    serving:
      port: 80
      replicas: {{min: 5, max: 2}}
  - name: churn
    team: growth
    version: 2.0.0
    artifact: {{uri: "s3://training-output/churn/model.joblib"}}
    image: {{ref: "registry.example/churn@sha256:{DIGEST}"}}
    batch: {{maxWorkers: 0}}
"""
    code, _, err = validate(tmp_path, text, capsys=capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines == [
        "models.yaml:5: model 'fraud': version: '1.4' is not a semantic version "
        "(MAJOR.MINOR.PATCH, e.g. 1.4.2)",
        "models.yaml:8: model 'fraud': image.ref: 'registry.example/fraud:latest' is not pinned "
        "by digest; append @sha256:<digest> (a tag can be moved, a digest cannot)",
        "models.yaml:10: model 'fraud': serving.port: must be at least 1024, got 80",
        "models.yaml:11: model 'fraud': serving.replicas: min (5) is greater than max (2)",
        "models.yaml:17: model 'churn': batch.maxWorkers: must be at least 1, got 0",
        "5 problems; nothing was done",
    ]


def test_a_problem_in_defaults_names_the_defaults_line(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    text = ("apiVersion: modelfleet/v1\ndefaults:\n  serving:\n    replicas: {min: 3, max: 2}\n"
            "models:\n" + GOOD_MODEL)
    code, _, err = validate(tmp_path, text, capsys=capsys)
    assert code == 1
    assert "models.yaml:4: model 'fraud': serving.replicas: min (3) is greater than max (2)" in err


def test_validate_environment_checks_only_that_environment(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = ("apiVersion: modelfleet/v1\nmodels:\n" + GOOD_MODEL.replace(
        "serving: {}", "serving:\n      replicas: {min: 2, max: 4}")
        + "    environments:\n      prod:\n        serving: {replicas: {min: 6}}\n")
    assert validate(tmp_path, text, "--environment", "dev", capsys=capsys)[0] == 0
    assert validate(tmp_path, text, "--environment", "prod", capsys=capsys)[0] == 1


def test_missing_file_is_one_line_not_a_traceback(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err
    assert code == 1
    assert err == f"error: {tmp_path / 'absent.yaml'}: no such file\n"


def test_an_empty_file_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = validate(tmp_path, "", capsys=capsys)
    assert code == 1
    assert "models.yaml:1: the file is empty" in err


def test_a_list_instead_of_a_mapping_is_a_problem(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = validate(tmp_path, "- name: fraud\n", capsys=capsys)
    assert code == 1
    assert "models.yaml:1: a manifest is a mapping" in err
