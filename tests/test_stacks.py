"""The whole program for every shipped stack: counts, team filter, approval gate, exports,
the change report of every update, and one tree under the fleet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from modelfleet.stacks.config import list_stacks, load_stack
from planner.simulate import ProgramFailed, Simulation
from tests.conftest import PROJECT
from tests.gitrepo import GitRepo
from tests.shipped import PINNED_COMMIT, copy_project, run_shipped_stack

SHIPPED = ["dev", "growth-dev", "prod", "risk-prod", "staging"]

# The example manifest: fraud-detector (serving, built), churn-scorer (batch, built, an
# uploaded artifact of one file, one run except in dev), product-recommender (serving and
# batch, prebuilt), image-tagger (serving, built, GPU).
EXPECTED = {
    "dev": {  # every model, dev overrides drop the run, namespace created;
        # the fraud detector's challenger and the tagger's shadow (a built image, a Deployment,
        # a Service, an autoscaler, a role and a metadata record each), a route per online
        # model, the tagger on KEDA (requests in flight); the assistant (vLLM) and the ranker
        # (Triton), prebuilt: a repository, Deployment, Service, HPA, route, role, record each;
        # the assistant's endpoint picker (a Deployment, a Service) for its InferencePool
        "aws:ecr/repository:Repository": 6, "docker:index/image:Image": 5,
        "kubernetes:apps/v1:Deployment": 10, "kubernetes:core/v1:Service": 8,
        "kubernetes:inference.networking.k8s.io/v1:InferencePool": 1,
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 5,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 4, "kubernetes:batch/v1:Job": 0,
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute": 5,
        "aws:sqs/queue:Queue": 4, "aws:iam/role:Role": 11, "kubernetes:core/v1:Namespace": 1,
        "aws:s3/bucketObjectv2:BucketObjectv2": 10, "aws:s3/bucket:Bucket": 1},
    "staging": {  # every model as merged to main, with the backfill run;
        # the fraud detector's challenger and the tagger's shadow (a built image, a Deployment,
        # a Service, an autoscaler, a role and a metadata record each), a route per online
        # model, the tagger on KEDA (requests in flight); the assistant (vLLM) and the ranker
        # (Triton), prebuilt: a repository, Deployment, Service, HPA, route, role, record each;
        # the assistant's endpoint picker (a Deployment, a Service) for its InferencePool
        "aws:ecr/repository:Repository": 6, "docker:index/image:Image": 5,
        "kubernetes:apps/v1:Deployment": 10, "kubernetes:core/v1:Service": 8,
        "kubernetes:inference.networking.k8s.io/v1:InferencePool": 1,
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 5,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 4, "kubernetes:batch/v1:Job": 1,
        "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute": 5,
        "aws:sqs/queue:Queue": 4, "aws:iam/role:Role": 11, "kubernetes:core/v1:Namespace": 0,
        "aws:s3/bucketObjectv2:BucketObjectv2": 10, "aws:s3/bucket:Bucket": 1},
    "prod": {  # the release commit: the models as they were then, existing namespace
        "aws:ecr/repository:Repository": 4, "docker:index/image:Image": 3,
        "kubernetes:apps/v1:Deployment": 5, "kubernetes:core/v1:Service": 3,
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 3,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 2, "kubernetes:batch/v1:Job": 1,
        "aws:sqs/queue:Queue": 4, "aws:iam/role:Role": 7, "kubernetes:core/v1:Namespace": 0,
        "aws:s3/bucketObjectv2:BucketObjectv2": 6, "aws:s3/bucket:Bucket": 1},
    "risk-prod": {  # fraud-detector only
        "aws:ecr/repository:Repository": 1, "docker:index/image:Image": 1,
        "kubernetes:apps/v1:Deployment": 1, "kubernetes:core/v1:Service": 1,
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 1,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 0, "kubernetes:batch/v1:Job": 0,
        "aws:sqs/queue:Queue": 0, "aws:iam/role:Role": 1, "kubernetes:core/v1:Namespace": 0,
        "aws:s3/bucketObjectv2:BucketObjectv2": 2, "aws:s3/bucket:Bucket": 1},
    "growth-dev": {  # churn-scorer and product-recommender, no KEDA: an HPA per worker
        "aws:ecr/repository:Repository": 2, "docker:index/image:Image": 1,
        "kubernetes:apps/v1:Deployment": 3, "kubernetes:core/v1:Service": 1,
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": 3,
        "kubernetes:keda.sh/v1alpha1:ScaledObject": 0, "kubernetes:batch/v1:Job": 0,
        "aws:sqs/queue:Queue": 4, "aws:iam/role:Role": 3, "kubernetes:core/v1:Namespace": 1,
        "aws:s3/bucketObjectv2:BucketObjectv2": 4, "aws:s3/bucket:Bucket": 1},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    return copy_project(tmp_path_factory.mktemp("shipped") / "project")


@pytest.fixture(scope="module")
def runs(project: GitRepo) -> dict[str, Simulation]:
    return {name: run_shipped_stack(project, name) for name in SHIPPED}


def test_these_are_the_shipped_stacks() -> None:
    assert list_stacks(PROJECT) == SHIPPED


@pytest.mark.parametrize("stack", SHIPPED)
def test_resource_counts_by_type(runs: dict[str, Simulation], stack: str) -> None:
    counts = Counter(r.type for r in runs[stack].registrations)
    assert {type_: counts[type_] for type_ in EXPECTED[stack]} == EXPECTED[stack]


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_resource_is_a_child_of_the_fleet(runs: dict[str, Simulation], stack: str) -> None:
    simulation = runs[stack]
    (fleet,) = simulation.of_type("modelfleet:fleet:ModelFleet")
    by_urn = simulation.by_urn()
    providers = {r.urn for r in simulation.registrations if r.type.startswith("pulumi:providers:")}
    for registration in simulation.registrations:
        if registration.urn in providers or registration is fleet:
            continue
        parent = registration.parent
        while parent in by_urn and parent != fleet.urn:
            parent = by_urn[parent].parent
        assert parent == fleet.urn, f"{registration.type} {registration.name} is outside the fleet"


@pytest.mark.parametrize("stack", SHIPPED)
def test_providers_are_explicit(runs: dict[str, Simulation], stack: str) -> None:
    simulation = runs[stack]
    providers = {r.type.split(":")[-1]: r.urn for r in simulation.registrations
                 if r.type.startswith("pulumi:providers:")}
    assert set(providers) == {"aws", "kubernetes"}
    for registration in simulation.registrations:
        if registration.custom and registration.type.split(":")[0] in providers:
            package = registration.type.split(":")[0]
            assert registration.provider.startswith(providers[package]), registration.name


def test_the_team_filter(runs: dict[str, Simulation]) -> None:
    models = {stack: sorted(runs[stack].outputs["manifest"]["models"]) for stack in SHIPPED}
    assert models["risk-prod"] == ["fraud-detector"]
    assert models["growth-dev"] == ["churn-scorer", "product-recommender"]
    assert len(models["prod"]) == 4
    teams = {r.inputs["tags"]["team"] for r in runs["risk-prod"].registrations
             if "tags" in r.inputs and "team" in r.inputs["tags"]}
    assert teams == {"risk"}


def test_without_keda_the_stack_says_how_workers_scale(runs: dict[str, Simulation]) -> None:
    warnings = runs["growth-dev"].messages("warning")
    assert any("'churn-scorer': KEDA is not installed" in line for line in warnings)


def test_exports(project: GitRepo, runs: dict[str, Simulation]) -> None:
    prod = runs["prod"].outputs
    manifest = prod["manifest"]
    assert manifest["ref"] == PINNED_COMMIT
    assert manifest["commit"] == project.repo.commit(PINNED_COMMIT).hexsha
    assert manifest["digest"].startswith("sha256:")
    assert manifest["models"] == ["fraud-detector", "churn-scorer", "product-recommender",
                                  "image-tagger"]
    fraud = prod["models"]["fraud-detector"]
    assert fraud["version"] == "1.4.2"
    assert fraud["endpoint"] == "http://fraud-detector.models-prod.svc.cluster.local:8080"
    assert "@sha256:" in fraud["image"]
    churn = prod["models"]["churn-scorer"]
    assert churn["queueUrl"].endswith("/modelfleet-prod-churn-scorer")
    assert churn["deadLetterQueueUrl"].endswith("/modelfleet-prod-churn-scorer-dlq")
    assert "endpoint" not in churn
    assert set(prod["models"]["product-recommender"]) >= {"endpoint", "queueUrl", "image"}


def test_prod_deploys_the_tag_and_dev_the_working_tree(project: GitRepo) -> None:
    models = project.root / "models.yaml"
    original = models.read_text()
    models.write_text(original.replace("version: 1.4.2", "version: 1.4.9"))
    try:
        dev = run_shipped_stack(project, "dev")
        prod = run_shipped_stack(project, "prod")
    finally:
        models.write_text(original)
    assert dev.outputs["models"]["fraud-detector"]["version"] == "1.4.9"
    assert prod.outputs["models"]["fraud-detector"]["version"] == "1.4.2"


def test_a_candidate_fails_a_stack_that_requires_approval(project: GitRepo) -> None:
    models = project.root / "models.yaml"
    original = models.read_text()
    candidate = original.replace("    stage: approved\n", "    stage: candidate\n", 1)
    models.write_text(candidate)
    stack_file = project.root / "stacks/Pulumi.prod-next.yaml"
    stack_file.write_text((project.root / "stacks/Pulumi.prod.yaml").read_text().replace(
        f"  modelfleet:manifestRef: {PINNED_COMMIT}\n", ""))
    try:
        with pytest.raises(ProgramFailed) as failure:
            run_shipped_stack(project, "prod-next")
    finally:
        models.write_text(original)
        stack_file.unlink()
    assert failure.value.simulation.registrations == [], "nothing may be declared"
    (error,) = failure.value.simulation.messages("error")
    assert error == ("models.yaml:19: model 'fraud-detector' (environment 'prod'): stage: is "
                     "'candidate', but this stack deploys approved models only; set "
                     "`stage: approved` once the model has passed review")


def test_the_first_deployment_says_so(runs: dict[str, Simulation]) -> None:
    assert runs["prod"].messages("info") == [
        "modelfleet: first deployment of this stack: 4 model(s): fraud-detector 1.4.2, "
        "churn-scorer 2.1.0, product-recommender 3.0.1, image-tagger 1.0.0"]


def test_an_unchanged_update_reports_no_change(project: GitRepo,
                                               runs: dict[str, Simulation]) -> None:
    again = run_shipped_stack(project, "prod", previous=runs["prod"].outputs)
    lines = again.messages("info")
    assert lines[0].startswith("modelfleet: changes since the last deployment (")
    assert lines[-1] == "modelfleet: Summary: no changes (4 models unchanged)"


def test_a_version_bump_is_reported_model_by_model(project: GitRepo,
                                                   runs: dict[str, Simulation]) -> None:
    models = project.root / "models.yaml"
    original = models.read_text()
    models.write_text(original.replace("version: 1.4.2", "version: 1.4.3"))
    try:
        bumped = run_shipped_stack(project, "dev", previous=runs["dev"].outputs)
    finally:
        models.write_text(original)
    assert bumped.messages("info")[1:] == [
        "modelfleet: ~ fraud-detector 1.4.2 → 1.4.3 (patch)",
        "modelfleet:     version: 1.4.2 → 1.4.3",
        "modelfleet: Summary: 1 changed (1 patch), 5 unchanged",
    ]


def test_a_rebuild_under_the_same_version_is_reported_as_a_runtime_change(
        project: GitRepo, runs: dict[str, Simulation]) -> None:
    dockerfile = project.root / "images/sklearn.Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original + "\n# a change to the image\n")
    try:
        rebuilt = run_shipped_stack(project, "dev", previous=runs["dev"].outputs)
    finally:
        dockerfile.write_text(original)
    warnings = [line for line in rebuilt.messages("info") if "warning:" in line]
    builds = {r.name: r.inputs["imageName"].rpartition(":")[2]
              for r in rebuilt.of_type("docker:index/image:Image")}
    # The fraud detector's candidate builds the same context, tagged with its own version.
    assert sorted(warnings) == [
        f"modelfleet: warning: model {name}: runtime change: its image build context or build "
        f"arguments changed (new tag {builds[image]}) under version {version}, whose artifact "
        "stays; its pods roll onto the new image. Check the new runtime as you would a new "
        "version (a candidate, or a stack before this one)." for name, version, image in (
            ("'churn-scorer'", "2.1.0", "churn-scorer-image"),
            ("'fraud-detector' (candidate 'challenger')", "1.5.0",
             "fraud-detector-challenger-image"),
            ("'fraud-detector'", "1.4.2", "fraud-detector-image"))]


def test_a_secret_kubeconfig_is_used_as_a_kubeconfig_and_never_read(project: GitRepo) -> None:
    stack_file = project.root / "stacks/Pulumi.secret.yaml"
    stack_file.write_text((project.root / "stacks/Pulumi.dev.yaml").read_text().replace(
        "modelfleet:kubeconfig: ml-dev",
        "modelfleet:kubeconfig:\n    secure: v1:AAAAAAAAAAAAAAAA:bm90LWRlY3J5cHRlZA=="))
    try:
        config = load_stack(project.root, "secret")
        simulation = run_shipped_stack(project, "secret")
    finally:
        stack_file.unlink()
    assert config.secrets == {"modelfleet:kubeconfig"}
    (provider,) = simulation.of_type("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secrets
    assert "context" not in provider.inputs


def test_stack_files_name_only_known_keys() -> None:
    project_keys = set(load_stack(PROJECT, "dev").values)
    for stack in SHIPPED:
        assert set(load_stack(PROJECT, stack).values) <= project_keys | {"aws:region"}, stack


def test_an_unknown_stack_is_a_clear_error(tmp_path: Path) -> None:
    from modelfleet.manifest.problems import SourceError

    with pytest.raises(SourceError, match=r"no stack 'qa': stacks/Pulumi.qa.yaml does not exist "
                                          r"\(stacks: dev, growth-dev, prod, risk-prod, staging\)"):
        load_stack(PROJECT, "qa")


def test_images_build_from_the_shared_context_with_their_own_dockerfile(
        runs: dict[str, Simulation]) -> None:
    builds = {r.name: r.inputs["build"] for r in runs["dev"].of_type("docker:index/image:Image")}
    assert builds["fraud-detector-image"]["dockerfile"].endswith("/images/sklearn.Dockerfile")
    assert builds["image-tagger-image"]["dockerfile"].endswith("/images/torch.Dockerfile")
    assert {Path(b["context"]).name for b in builds.values()} == {"images"}
    assert builds["fraud-detector-image"]["args"] == {
        "PYTHON_VERSION": "3.11", "MODEL_NAME": "fraud-detector", "MODEL_VERSION": "1.4.2"}
