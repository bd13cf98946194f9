"""Online serving under the mock runtime: identity, hardened pods, autoscaling, safe rollouts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from planner.simulate import ProgramFailed, Simulation
from tests.deploy import OIDC_ISSUER, changed, deploy
from tests.gitrepo import GitRepo

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
ACCOUNT = "kubernetes:core/v1:ServiceAccount"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
REF = "registry.example/vision@sha256:" + "a" * 64


def manifest(fraud_version: str = "1.4.2", fraud_replicas: str = "{min: 2, max: 10}") -> str:
    return f"""\
apiVersion: modelfleet/v1
models:
  - name: fraud
    team: risk
    version: {fraud_version}
    stage: approved
    artifact: {{uri: "s3://training-output/fraud/model.joblib", sha256: "{'b' * 64}"}}
    image: {{build: {{context: images/sklearn}}}}
    serving:
      port: 9000
      replicas: {fraud_replicas}
      targetCPUUtilization: 65
      resources: {{cpu: "1", memory: 2Gi}}
      env: {{LOG_LEVEL: info, WORKERS: "4"}}
  - name: tagger
    team: vision
    version: 0.9.0
    artifact: {{path: artifacts/tagger.pt}}
    image: {{ref: "{REF}"}}
    serving:
      resources: {{cpu: "4", memory: 16Gi, gpu: 1}}
"""


@pytest.fixture
def project(repo: GitRepo) -> GitRepo:
    repo.write("images/sklearn/Dockerfile", "FROM python:3.11-slim\n")
    repo.write("artifacts/tagger.pt", "weights")
    repo.write("models.yaml", manifest())
    repo.commit("fraud and tagger")
    return repo


@pytest.fixture
def dev(project: GitRepo) -> Simulation:
    return deploy(project.root / "models.yaml")


def pod_spec(simulation: Simulation, model: str) -> dict[str, Any]:
    return dict(simulation.find(DEPLOYMENT, model).inputs["spec"]["template"]["spec"])


def container(simulation: Simulation, model: str) -> dict[str, Any]:
    (only,) = pod_spec(simulation, model)["containers"]
    return dict(only)


def statements(simulation: Simulation, name: str) -> list[dict[str, Any]]:
    policy = json.loads(simulation.find(ROLE_POLICY, name).inputs["policy"])
    return list(policy["Statement"])


def test_service_account_is_bound_to_a_role_trusting_only_it(dev: Simulation) -> None:
    account = dev.find(ACCOUNT, "fraud-server-sa")
    role = dev.find(ROLE, "fraud-server-role")
    assert account.inputs["metadata"]["name"] == "fraud-server"
    assert account.inputs["metadata"]["namespace"] == "models"
    assert account.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == \
        role.outputs["arn"]
    assert account.inputs["automountServiceAccountToken"] is False
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert trust["Principal"] == {
        "Federated": f"arn:aws:iam::123456789012:oidc-provider/{OIDC_ISSUER}"}
    assert trust["Condition"] == {"StringEquals": {
        f"{OIDC_ISSUER}:sub": "system:serviceaccount:models:fraud-server",
        f"{OIDC_ISSUER}:aud": "sts.amazonaws.com"}}


def test_role_may_read_its_models_prefix_and_its_artifact_only(dev: Simulation) -> None:
    bucket = dev.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"]
    key = dev.find("aws:kms/key:Key", "registry-key").outputs["arn"]
    found = {s["Sid"]: s for s in statements(dev, "fraud-server-policy")}
    assert found == {
        "ReadModelObjects": {"Sid": "ReadModelObjects", "Effect": "Allow",
                             "Action": ["s3:GetObject"],
                             "Resource": f"arn:aws:s3:::{bucket}/models/fraud/*"},
        "ReadModelList": {"Sid": "ReadModelList", "Effect": "Allow",
                          "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}",
                          "Condition": {"StringLike": {"s3:prefix": ["models/fraud/*"]}}},
        "DecryptRegistryObjects": {"Sid": "DecryptRegistryObjects", "Effect": "Allow",
                                   "Action": ["kms:Decrypt"], "Resource": key},
        "ReadArtifactObject": {"Sid": "ReadArtifactObject", "Effect": "Allow",
                               "Action": ["s3:GetObject"],
                               "Resource": "arn:aws:s3:::training-output/fraud/model.joblib"},
    }
    tagger = statements(dev, "tagger-server-policy")
    assert all("fraud" not in json.dumps(s) for s in tagger)


def test_deployment_runs_the_digest_with_the_models_environment(dev: Simulation) -> None:
    deployment = dev.find(DEPLOYMENT, "fraud")
    assert deployment.inputs["metadata"]["name"] == "fraud"
    image = dev.find("docker:index/image:Image", "fraud-image").outputs["repoDigest"]
    server = container(dev, "fraud")
    assert server["image"] == image
    assert "@sha256:" in server["image"]
    assert [(e["name"], e["value"]) for e in server["env"]] == [
        ("MODEL_NAME", "fraud"), ("MODEL_VERSION", "1.4.2"),
        ("MODEL_URI", "s3://training-output/fraud/model.joblib"),
        ("MODEL_SHA256", "b" * 64), ("LOG_LEVEL", "info"), ("MODEL_GRPC_PORT", "8081"),
        ("MODEL_PORT", "9000"), ("WORKERS", "4")]
    assert server["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"},
                               {"name": "grpc", "containerPort": 8081, "protocol": "TCP"}]
    assert server["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"},
                                   "limits": {"cpu": "1", "memory": "2Gi"}}
    assert pod_spec(dev, "fraud")["serviceAccountName"] == "fraud-server"


def test_an_uploaded_artifact_is_the_model_uri(dev: Simulation) -> None:
    env = {e["name"]: e["value"] for e in container(dev, "tagger")["env"]}
    bucket = dev.find("aws:s3/bucket:Bucket", "registry-bucket").outputs["bucket"]
    assert env["MODEL_URI"] == f"s3://{bucket}/models/tagger/0.9.0/artifact/tagger.pt"
    assert container(dev, "tagger")["image"] == REF


def test_pods_are_hardened(dev: Simulation) -> None:
    spec = pod_spec(dev, "fraud")
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001,
                                       "runAsGroup": 10001, "fsGroup": 10001,
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    security = container(dev, "fraud")["securityContext"]
    assert security == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
        "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "privileged": False, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert container(dev, "fraud")["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]


def test_probes_wait_for_the_model_to_load(dev: Simulation) -> None:
    server = container(dev, "fraud")
    assert server["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert server["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = server["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert server["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


def test_a_gpu_model_asks_for_gpus_on_gpu_nodes(dev: Simulation, project: GitRepo) -> None:
    resources = container(dev, "tagger")["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1"
    spec = pod_spec(dev, "tagger")
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                    "effect": "NoSchedule"}]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "nodeSelector" not in pod_spec(dev, "fraud")
    custom = deploy(project.root / "models.yaml", config={
        "modelfleet:gpuNodeSelector": "karpenter.k8s.aws/instance-gpu-name=a10g",
        "modelfleet:gpuTolerationKey": "gpu"})
    assert pod_spec(custom, "tagger")["nodeSelector"] == {
        "karpenter.k8s.aws/instance-gpu-name": "a10g"}
    assert pod_spec(custom, "tagger")["tolerations"][0]["key"] == "gpu"


def test_rollouts_never_reduce_capacity_and_pods_spread(dev: Simulation) -> None:
    spec = dev.find(DEPLOYMENT, "fraud").inputs["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
    spread = pod_spec(dev, "fraud")["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone",
                                                  "kubernetes.io/hostname"]
    assert all(c["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
               for c in spread)


def test_the_deployment_leaves_replicas_to_the_autoscaler(dev: Simulation) -> None:
    spec = dev.find(DEPLOYMENT, "fraud").inputs["spec"]
    assert "replicas" not in spec, "the HPA owns spec.replicas; setting it would fight it"


def test_labels_and_selector(project: GitRepo, dev: Simulation) -> None:
    deployment = dev.find(DEPLOYMENT, "fraud").inputs
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/name": "fraud", "app.kubernetes.io/instance": "fraud",
        "app.kubernetes.io/component": "server", "app.kubernetes.io/version": "1.4.2",
        "app.kubernetes.io/part-of": "modelfleet", "app.kubernetes.io/managed-by": "pulumi",
        "modelfleet.dev/team": "risk", "modelfleet.dev/environment": "dev"}
    assert deployment["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "fraud", "app.kubernetes.io/component": "server"}
    assert deployment["metadata"]["annotations"]["modelfleet.dev/manifest-commit"] == \
        project.repo.head.commit.hexsha


def test_service_autoscaler_budget(dev: Simulation) -> None:
    service = dev.find(SERVICE, "fraud").inputs["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 9000, "targetPort": "http", "protocol": "TCP",
         "appProtocol": "http"},
        {"name": "grpc", "port": 8081, "targetPort": "grpc", "protocol": "TCP",
         "appProtocol": "kubernetes.io/h2c"}]
    assert service["selector"] == {"app.kubernetes.io/name": "fraud",
                                   "app.kubernetes.io/component": "server"}
    hpa = dev.find(HPA, "fraud").inputs
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "fraud"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    pdb = dev.find(PDB, "fraud").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"] == service["selector"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert dev.outputs["models"]["fraud"]["endpoint"] == \
        "http://fraud.models.svc.cluster.local:9000"


def test_network_policy_admits_only_the_port_from_listed_namespaces(
        dev: Simulation, project: GitRepo) -> None:
    policy = dev.find(POLICY, "fraud").inputs["spec"]
    assert policy["policyTypes"] == ["Ingress"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "fraud",
                                                    "app.kubernetes.io/component": "server"}
    rule, scrape = policy["ingress"]
    assert rule["ports"] == [{"port": 9000, "protocol": "TCP"}, {"port": 8081, "protocol": "TCP"}]
    (peer,) = rule["from"]
    assert peer == {"namespaceSelector": {"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "In", "values": ["models"]}]}}
    assert scrape == {"ports": [{"port": 9000, "protocol": "TCP"}], "from": [
        {"namespaceSelector": {"matchExpressions": [{
            "key": "kubernetes.io/metadata.name", "operator": "In",
            "values": ["monitoring"]}]}}]}, "Prometheus scrapes the HTTP port only"
    wider = deploy(project.root / "models.yaml",
                   config={"modelfleet:allowedNamespaces": '["gateway", "monitoring"]'})
    values = wider.find(POLICY, "fraud").inputs["spec"]["ingress"][0]["from"][0][
        "namespaceSelector"]["matchExpressions"][0]["values"]
    assert values == ["gateway", "models", "monitoring"]


def test_the_namespace_is_created_only_when_config_says_so(dev: Simulation,
                                                           project: GitRepo) -> None:
    assert dev.of_type("kubernetes:core/v1:Namespace") == []
    created = deploy(project.root / "models.yaml",
                     config={"modelfleet:createNamespace": "true"})
    (namespace,) = created.of_type("kubernetes:core/v1:Namespace")
    assert namespace.inputs["metadata"]["name"] == "models"
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == \
        "restricted"
    assert namespace.retain_on_delete
    deployment = created.find(DEPLOYMENT, "fraud")
    assert namespace.urn in deployment.dependencies, "objects must wait for their namespace"


def test_a_version_bump_rolls_pods_without_replacing_anything(project: GitRepo,
                                                              dev: Simulation) -> None:
    project.write("models.yaml", manifest(fraud_version="1.5.0"))
    project.commit("fraud 1.5.0")
    bumped = deploy(project.root / "models.yaml")
    assert {r.key for r in bumped.registrations} == {r.key for r in dev.registrations}
    before, after = dev.find(DEPLOYMENT, "fraud").inputs, bumped.find(DEPLOYMENT, "fraud").inputs
    assert after["metadata"]["name"] == before["metadata"]["name"] == "fraud"
    assert after["spec"]["selector"] == before["spec"]["selector"], "selectors are immutable"
    old, new = before["spec"]["template"], after["spec"]["template"]
    assert old["metadata"]["labels"]["app.kubernetes.io/version"] == "1.4.2"
    assert new["metadata"]["labels"]["app.kubernetes.io/version"] == "1.5.0"
    assert old["spec"]["containers"][0]["image"] != new["spec"]["containers"][0]["image"]
    assert not {key for key in changed(dev, bumped) if key[1].startswith("tagger")}


def test_a_replicas_change_changes_only_the_autoscaler(project: GitRepo, dev: Simulation) -> None:
    project.write("models.yaml", manifest(fraud_replicas="{min: 3, max: 20}"))
    project.commit("fraud scales wider")
    wider = deploy(project.root / "models.yaml")
    assert changed(dev, wider) == {(HPA, "fraud")}
    spec = wider.find(HPA, "fraud").inputs["spec"]
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 20)


def test_a_batch_only_model_gets_no_service(project: GitRepo) -> None:
    project.write("models.yaml", manifest() + """\
  - name: churn
    team: growth
    version: 1.0.0
    artifact: {uri: "s3://training-output/churn/model.joblib"}
    image: {build: {context: images/sklearn}}
    batch: {}
""")
    simulation = deploy(project.root / "models.yaml")
    assert sorted(r.name for r in simulation.of_type(SERVICE)) == ["fraud", "tagger"]
    assert not [r for r in simulation.registrations if r.name.startswith("churn-server")]
    assert simulation.outputs["models"]["churn"].get("endpoint") is None


def test_pulumi_names_and_kubernetes_names_never_carry_the_version(dev: Simulation) -> None:
    for registration in dev.registrations:
        assert "1.4.2" not in registration.name
        metadata = registration.inputs.get("metadata")
        if isinstance(metadata, dict):
            assert "1.4.2" not in str(metadata.get("name", ""))


def test_missing_oidc_configuration_fails_before_anything_is_declared(
        project: GitRepo) -> None:
    with pytest.raises(ProgramFailed) as failure:
        deploy(project.root / "models.yaml", config={"modelfleet:oidcProviderArn": ""})
    assert failure.value.simulation.registrations == []
    assert any("modelfleet:oidcProviderArn: is required" in line
               for line in failure.value.simulation.messages("error"))


def test_a_pinned_object_version_reaches_the_server_and_its_role(project: GitRepo) -> None:
    models = project.root / "models.yaml"
    models.write_text(manifest().replace(
        'artifact: {uri: "s3://training-output/fraud/model.joblib", ',
        'artifact: {uri: "s3://training-output/fraud/model.joblib", versionId: "3HL4kqtJlcpXro", '))
    pinned = deploy(models)
    env = {e["name"]: e["value"] for e in container(pinned, "fraud")["env"]}
    assert env["MODEL_OBJECT_VERSION"] == "3HL4kqtJlcpXro"
    found = {s["Sid"]: s for s in statements(pinned, "fraud-server-policy")}
    assert found["ReadArtifactVersion"] == {
        "Sid": "ReadArtifactVersion", "Effect": "Allow", "Action": ["s3:GetObjectVersion"],
        "Resource": "arn:aws:s3:::training-output/fraud/model.joblib",
        "Condition": {"StringEquals": {"s3:VersionId": "3HL4kqtJlcpXro"}}}
    on_the_key = [s for s in found.values() if "training-output" in json.dumps(s["Resource"])]
    assert on_the_key == [found["ReadArtifactVersion"]], \
        "only the pinned version: no s3:GetObject (the current object), no other version"
