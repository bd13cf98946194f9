"""Batch workers under the mock runtime: queues, identity, KEDA to zero, partitioned runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from planner.render import kubernetes_object
from planner.simulate import Simulation
from tests.deploy import OIDC_ISSUER, changed, deploy
from tests.gitrepo import GitRepo
from tests.kubernetes_crds import custom_resource_errors

QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
SCALED = "kubernetes:keda.sh/v1alpha1:ScaledObject"
AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
REF = "registry.example/churn@sha256:" + "c" * 64
NIGHTLY = """\
        - id: nightly
          input: s3://exports/2026-11-27/scores.jsonl
          partitions: 8
"""
BACKFILL = """\
        - id: backfill
          input: s3://exports/2026-10/
          partitions: 100
          parallelism: 10
"""


def manifest(version: str = "2.0.0", runs: str = NIGHTLY, min_workers: int = 0) -> str:
    return f"""\
apiVersion: modelfleet/v1
models:
  - name: churn
    team: growth
    version: {version}
    artifact: {{uri: "s3://training-output/churn/model.joblib"}}
    image: {{ref: "{REF}"}}
    batch:
      minWorkers: {min_workers}
      maxWorkers: 20
      messagesPerWorker: 5
      visibilityTimeoutSeconds: 600
      maxReceiveCount: 4
      resources: {{cpu: "2", memory: 4Gi}}
      env: {{BATCH_SIZE: "256"}}
      runs:
{runs}  - name: fraud
    team: risk
    version: 1.0.0
    artifact: {{uri: "s3://training-output/fraud/model.joblib"}}
    image: {{ref: "registry.example/fraud@sha256:{'d' * 64}"}}
    serving: {{}}
    batch: {{}}
"""


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    repo.write("models.yaml", manifest())
    repo.commit("churn workers")
    return repo


@pytest.fixture
def dev(project: GitRepo) -> Simulation:
    return deploy(project.root / "models.yaml")


def policy_statements(simulation: Simulation, name: str) -> dict[str, dict[str, Any]]:
    policy = json.loads(simulation.find(ROLE_POLICY, name).inputs["policy"])
    return {statement["Sid"]: statement for statement in policy["Statement"]}


def pod(simulation: Simulation, type_: str, name: str) -> dict[str, Any]:
    return dict(simulation.find(type_, name).inputs["spec"]["template"]["spec"])


def env_of(spec: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in spec["containers"][0]["env"]}


def test_queue_and_dead_letter_queue(dev: Simulation) -> None:
    queue = dev.find(QUEUE, "churn-queue")
    dead = dev.find(QUEUE, "churn-queue-dlq")
    assert queue.inputs["name"] == "modelfleet-dev-churn"
    assert dead.inputs["name"] == "modelfleet-dev-churn-dlq"
    assert queue.inputs["visibilityTimeoutSeconds"] == 600
    assert queue.inputs["receiveWaitTimeSeconds"] == 20
    assert json.loads(queue.inputs["redrivePolicy"]) == {
        "deadLetterTargetArn": dead.outputs["arn"], "maxReceiveCount": 4}
    assert dead.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    for each in (queue, dead):
        assert each.inputs["sqsManagedSseEnabled"] is True
        assert each.retain_on_delete, "waiting messages outlive the model"
    allow = dev.find("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
                     "churn-queue-dlq-redrive-allow")
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue", "sourceQueueArns": [queue.outputs["arn"]]}


def test_queues_deny_requests_without_tls(dev: Simulation) -> None:
    for name, queue in (("churn-queue-policy", "churn-queue"),
                        ("churn-queue-dlq-policy", "churn-queue-dlq")):
        registration = dev.find(QUEUE_POLICY, name)
        arn = dev.find(QUEUE, queue).outputs["arn"]
        (statement,) = json.loads(registration.inputs["policy"])["Statement"]
        assert statement == {"Sid": "DenyInsecureTransport", "Effect": "Deny",
                             "Principal": "*", "Action": "sqs:*", "Resource": arn,
                             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def test_worker_role_is_limited_to_its_queue_model_inputs_and_outputs(dev: Simulation) -> None:
    role = dev.find(ROLE, "churn-worker-role")
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Condition"]["StringEquals"][f"{OIDC_ISSUER}:sub"] == \
        "system:serviceaccount:models:churn-worker"
    bucket = dev.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"]
    registry = f"arn:aws:s3:::{bucket}"
    queue_arn = dev.find(QUEUE, "churn-queue").outputs["arn"]
    found = policy_statements(dev, "churn-worker-policy")
    assert found["ConsumeOwnQueue"]["Resource"] == queue_arn
    assert set(found["ConsumeOwnQueue"]["Action"]) == {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}, \
        "what the worker calls, nothing more"
    assert found["WriteOutputs"] == {
        "Sid": "WriteOutputs", "Effect": "Allow",
        "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
        "Resource": f"{registry}/outputs/churn/*"}
    assert found["ReadModelAndInputs"]["Resource"] == [
        f"{registry}/models/churn/*", f"{registry}/inputs/churn/*", f"{registry}/outputs/churn/*"]
    assert found["ReadArtifactObject"]["Resource"] == \
        "arn:aws:s3:::training-output/churn/model.joblib"
    assert found["ReadRunInput0Object"]["Resource"] == \
        "arn:aws:s3:::exports/2026-11-27/scores.jsonl"
    everything = json.dumps(list(found.values()))
    assert "fraud" not in everything, "one model's role never reaches another's data"
    for statement in found.values():
        assert statement["Effect"] == "Allow"
        assert not {"*", "s3:*", "sqs:*"} & set(statement["Action"])


def test_worker_deployment_is_hardened_like_the_server(dev: Simulation) -> None:
    worker = pod(dev, DEPLOYMENT, "churn-worker")
    server = pod(dev, DEPLOYMENT, "fraud")
    assert worker["securityContext"] == server["securityContext"]
    assert worker["containers"][0]["securityContext"] == server["containers"][0]["securityContext"]
    assert worker["automountServiceAccountToken"] is False
    assert worker["volumes"] == server["volumes"]
    assert worker["serviceAccountName"] == "churn-worker"
    assert "replicas" not in dev.find(DEPLOYMENT, "churn-worker").inputs["spec"]
    assert worker["containers"][0]["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}


def test_worker_mode_environment_and_a_grace_period_that_covers_a_message(
        dev: Simulation) -> None:
    worker = pod(dev, DEPLOYMENT, "churn-worker")
    env = env_of(worker)
    bucket = dev.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"]
    assert env["MODEL_MODE"] == "worker"
    assert env["QUEUE_URL"] == dev.find(QUEUE, "churn-queue").outputs["url"]
    assert env["OUTPUT_URI"] == f"s3://{bucket}/outputs/churn/"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["BATCH_SIZE"] == "256"
    assert env["VISIBILITY_TIMEOUT_SECONDS"] == "600"
    assert worker["terminationGracePeriodSeconds"] >= 600


def test_keda_scales_the_workers_on_queue_depth_down_to_zero(dev: Simulation) -> None:
    scaled = dev.find(SCALED, "churn-worker").inputs
    spec = scaled["spec"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "churn-worker"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 20)
    assert spec["cooldownPeriod"] == 300
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "aws-sqs-queue"
    assert trigger["metadata"] == {
        "queueURL": dev.find(QUEUE, "churn-queue").outputs["url"], "queueLength": "5",
        "awsRegion": "eu-west-1", "scaleOnInFlight": "true"}
    assert trigger["authenticationRef"] == {"name": "churn-worker"}
    auth = dev.find(AUTH, "churn-worker-auth").inputs
    assert auth["metadata"]["name"] == "churn-worker"
    scaler = dev.find(ROLE, "churn-scaler")
    assert auth["spec"] == {"podIdentity": {"provider": "aws",
                                            "roleArn": scaler.outputs["arn"]}}
    assert [r.name for r in dev.of_type(HPA)] == ["fraud"], "KEDA owns the workers' HPA"


def test_only_keda_may_assume_the_scaler_role_and_only_to_read_depth(dev: Simulation) -> None:
    scaler = dev.find(ROLE, "churn-scaler")
    (trust,) = json.loads(scaler.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Condition"]["StringEquals"] == {
        f"{OIDC_ISSUER}:sub": "system:serviceaccount:keda:keda-operator",
        f"{OIDC_ISSUER}:aud": "sts.amazonaws.com"}
    assert policy_statements(dev, "churn-scaler-policy") == {"ReadQueueDepth": {
        "Sid": "ReadQueueDepth", "Effect": "Allow", "Action": ["sqs:GetQueueAttributes"],
        "Resource": dev.find(QUEUE, "churn-queue").outputs["arn"]}}


def test_keda_objects_match_kedas_own_crd_schema(dev: Simulation) -> None:
    for type_ in (SCALED, AUTH):
        for registration in dev.of_type(type_):
            assert custom_resource_errors(kubernetes_object(registration)) == []


def test_the_crd_schema_catches_a_misspelled_field(dev: Simulation) -> None:
    scaled = kubernetes_object(dev.find(SCALED, "churn-worker"))
    scaled["spec"]["minReplicas"] = 0
    scaled["spec"]["triggers"][0]["metadata"]["queueLength"] = 5
    auth = kubernetes_object(dev.find(AUTH, "churn-worker-auth"))
    auth["spec"]["podIdentity"]["provider"] = "aws-irsa"
    assert len(custom_resource_errors(scaled)) == 2
    assert len(custom_resource_errors(auth)) == 1


def test_without_keda_a_cpu_autoscaler_keeps_one_worker_and_says_so(project: GitRepo) -> None:
    plain = deploy(project.root / "models.yaml", config={"modelfleet:keda": "false"})
    assert plain.of_type(SCALED) == []
    assert plain.of_type(AUTH) == []
    spec = plain.find(HPA, "churn-worker").inputs["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 20)
    assert spec["metrics"][0]["resource"]["name"] == "cpu"
    assert any("model 'churn': KEDA is not installed" in line and "never to zero" in line
               for line in plain.messages("warning"))


def test_a_run_is_an_indexed_job_over_its_partitions(dev: Simulation) -> None:
    job = dev.find(JOB, "churn-nightly")
    inputs = job.inputs
    assert inputs["metadata"]["name"] == "churn-nightly"
    spec = inputs["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (8, 8)
    assert spec["backoffLimitPerIndex"] == 3
    assert spec["ttlSecondsAfterFinished"] == 7 * 24 * 3600
    template = spec["template"]["spec"]
    assert template["restartPolicy"] == "Never"
    env = env_of(template)
    bucket = dev.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"]
    assert env["MODEL_MODE"] == "job"
    assert env["INPUT_URI"] == "s3://exports/2026-11-27/scores.jsonl"
    assert env["PARTITIONS"] == "8"
    assert env["OUTPUT_URI"] == f"s3://{bucket}/outputs/churn/nightly/"
    assert "JOB_COMPLETION_INDEX" not in env, "Kubernetes sets it for Indexed Jobs"
    assert template["serviceAccountName"] == "churn-worker"
    assert job.ignore_changes == ("spec", "metadata")
    assert job.retain_on_delete


def test_parallelism_defaults_to_the_partitions_within_max_workers(project: GitRepo) -> None:
    project.write("models.yaml", manifest(runs="""\
        - id: wide
          input: s3://exports/wide/
          partitions: 500
"""))
    simulation = deploy(project.root / "models.yaml")
    assert simulation.find(JOB, "churn-wide").inputs["spec"]["parallelism"] == 20


def test_adding_a_run_creates_its_job_and_leaves_the_others(project: GitRepo,
                                                            dev: Simulation) -> None:
    project.write("models.yaml", manifest(runs=NIGHTLY + BACKFILL))
    project.commit("backfill")
    after = deploy(project.root / "models.yaml")
    jobs = {(JOB, "churn-nightly"), (JOB, "churn-backfill")}
    assert {r.key for r in after.of_type(JOB)} == jobs
    touched = changed(dev, after)
    assert (JOB, "churn-backfill") in touched
    assert (JOB, "churn-nightly") not in touched
    assert not {key for key in touched if key[1].startswith("fraud")}
    backfill = after.find(JOB, "churn-backfill").inputs["spec"]
    assert (backfill["completions"], backfill["parallelism"]) == (100, 10)


def test_a_version_bump_leaves_finished_runs_alone(project: GitRepo, dev: Simulation) -> None:
    project.write("models.yaml", manifest(version="2.1.0"))
    project.commit("churn 2.1.0")
    after = deploy(project.root / "models.yaml")
    touched = changed(dev, after)
    assert (DEPLOYMENT, "churn-worker") in touched
    assert (JOB, "churn-nightly") not in touched, "a Job's template is immutable; runs are history"


def test_stack_outputs_per_batch_model(dev: Simulation) -> None:
    outputs = dev.outputs["models"]["churn"]
    bucket = dev.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"]
    assert outputs["queueUrl"] == dev.find(QUEUE, "churn-queue").outputs["url"]
    assert outputs["deadLetterQueueUrl"] == dev.find(QUEUE, "churn-queue-dlq").outputs["url"]
    assert outputs["outputPrefix"] == f"s3://{bucket}/outputs/churn/"


def test_min_workers_above_zero_is_kept_by_keda(project: GitRepo) -> None:
    project.write("models.yaml", manifest(min_workers=2))
    simulation = deploy(project.root / "models.yaml")
    assert simulation.find(SCALED, "churn-worker").inputs["spec"]["minReplicaCount"] == 2
