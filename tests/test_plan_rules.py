"""The rules under the plan's summary and risks, on objects written in the test itself."""

from __future__ import annotations

from typing import Any

from pulumi.runtime.mocks import MockResourceArgs

from planner.changes import resource_changes
from planner.placeholders import placeholder_outputs
from planner.policies import compare
from planner.recorder import Registration
from planner.review import ModelView
from planner.rollout import Rollout, rollout_of
from planner.summary import summarize

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"


def registration(type_: str, name: str, inputs: dict[str, Any]) -> Registration:
    return Registration(type=type_, name=name, urn=f"urn:pulumi:dev::p::{type_}::{name}",
                        parent="", custom=True, inputs=inputs)


def rollout(surge: int | str, unavailable: int | str, low: int, high: int,
            recreate: bool = False) -> Rollout:
    return Rollout("model", "server", recreate, surge, unavailable, 1, low, high, None)


def test_surge_rounds_up_and_unavailability_down_as_kubernetes_does() -> None:
    quarter = rollout("25%", "25%", 3, 30)
    assert (quarter.surge_at(3), quarter.unavailable_at(3)) == (1, 0)
    assert (quarter.surge_at(30), quarter.unavailable_at(30)) == (8, 7)
    assert rollout(0, 0, 2, 2).unavailable_at(2) == 1  # both zero: one at a time
    assert not rollout("25%", 0, 1, 4).stops_serving()
    assert rollout(0, 1, 1, 4).stops_serving()
    assert not rollout(0, 1, 2, 4).stops_serving()
    assert rollout(1, 0, 1, 1, recreate=True).stops_serving()
    assert rollout("50%", 0, 2, 8).pace() == (
        "new pods at a time: 1 at 2 replicas, up to 4 at 8, no pod stopped before its "
        "replacement is ready")


def test_gpus_per_pod_and_bounds_come_from_the_deployment_and_its_scaler() -> None:
    deployment = registration(DEPLOYMENT, "tagger", {
        "metadata": {"name": "tagger"},
        "spec": {"strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app.kubernetes.io/component": "server"}},
                              "spec": {"containers": [
                                  {"resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}})
    hpa = registration("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "tagger", {
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "tagger"},
                 "minReplicas": 2.0, "maxReplicas": 5.0}})
    keda = registration("kubernetes:keda.sh/v1alpha1:ScaledObject", "tagger", {
        "spec": {"scaleTargetRef": {"name": "tagger"}, "minReplicaCount": 0,
                 "maxReplicaCount": 10}})
    scaled = rollout_of(deployment, [hpa])
    assert (scaled.component, scaled.gpus_per_pod, scaled.bounds()) == (
        "server", 2, "2 to 5 replicas")
    assert scaled.spare_gpus() == (2, 2)
    to_zero = rollout_of(deployment, [keda])
    assert to_zero.running_range == (1, 10)
    assert not to_zero.stops_serving()
    fixed = rollout_of(deployment, [])
    assert (fixed.min_replicas, fixed.max_replicas, fixed.scaler) == (1, 1, None)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_a_policy_grants_more_only_when_no_old_statement_covers_the_new_one() -> None:
    read_all = {"Effect": "Allow", "Action": "s3:Get*",
                "Resource": "arn:aws:s3:::${registry-bucket.bucket}/*"}
    read_models = {"Effect": "Allow", "Action": ["s3:GetObject"],
                   "Resource": "arn:aws:s3:::${registry-bucket.bucket}/models/*"}
    assert not compare(policy(read_all), policy(read_models)).widens
    widened = compare(policy(read_models), policy(read_all))
    assert [g.describe() for g in widened.added] == [
        "s3:Get* on arn:aws:s3:::${registry-bucket.bucket}/*"]
    assert [g.describe() for g in widened.removed] == []
    other_bucket = {**read_models, "Resource": "arn:aws:s3:::${other-bucket.bucket}/models/*"}
    assert compare(policy(read_models), policy(other_bucket)).widens
    narrowed = {**read_models, "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    assert not compare(policy(read_models), policy(narrowed)).widens
    assert compare(policy(narrowed), policy(read_models)).widens
    deny = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    lifted = compare(policy(read_models, deny), policy(read_models))
    assert lifted.widens
    assert [g.action for g in lifted.lifted] == ["s3:*"]


def route(weights: dict[str, int], mirror: str | None = None) -> Registration:
    rule: dict[str, Any] = {"backendRefs": [{"name": name, "port": 8080, "weight": weight}
                                            for name, weight in weights.items()]}
    if mirror:
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": mirror, "port": 8080}, "percent": 5}}]
    return registration(ROUTE, "fraud-detector", {"spec": {"rules": [rule]}})


def test_traffic_weights_and_mirrors_of_an_httproute_are_summarized() -> None:
    before = [route({"fraud-detector": 1})]
    after = [route({"fraud-detector": 90, "fraud-detector-canary": 10},
                   mirror="fraud-detector-shadow")]
    spec = {"name": "fraud-detector", "version": "1.4.2"}
    view = ModelView("fraud-detector", before, after, resource_changes(before, after),
                     old=spec, new=spec)
    (summary,) = summarize([view])
    assert summary.lines == (
        "traffic of HTTPRoute fraud-detector: fraud-detector 100% → fraud-detector 90%, "
        "fraud-detector-canary 10%; mirrored to fraud-detector-shadow (5%)",)


def test_a_routes_version_paths_are_not_counted_as_traffic_shares() -> None:
    """The route of a model with a canary also sends each version's own path to its
    Service (100% each): the traffic line still says how live traffic is shared."""
    def pinned(version: str, service: str) -> dict[str, Any]:
        return {"matches": [{"path": {"type": "PathPrefix",
                                      "value": f"/v2/models/fraud-detector/versions/{version}"}}],
                "backendRefs": [{"name": service, "port": 8080, "weight": 100}]}
    before = [route({"fraud-detector": 1})]
    after = route({"fraud-detector": 90, "fraud-detector-challenger": 10})
    after.inputs["spec"]["rules"] += [pinned("1.4.2", "fraud-detector"),
                                      pinned("1.5.0", "fraud-detector-challenger")]
    spec = {"name": "fraud-detector", "version": "1.4.2"}
    view = ModelView("fraud-detector", before, [after], resource_changes(before, [after]),
                     old=spec, new=spec)
    (summary,) = summarize([view])
    assert summary.lines == (
        "traffic of HTTPRoute fraud-detector: fraud-detector 100% → fraud-detector 90%, "
        "fraud-detector-challenger 10%",)


def test_what_names_a_replaced_resource_changes_on_apply() -> None:
    def fleet(role_name: str) -> list[Registration]:
        return [
            registration("aws:iam/role:Role", "server-role", {"name": role_name}),
            registration("aws:iam/rolePolicy:RolePolicy", "server-policy",
                         {"role": "${server-role.id}", "policy": "{}"}),
            registration("kubernetes:core/v1:ServiceAccount", "server-sa", {"metadata": {
                "name": "server", "annotations": {
                    "eks.amazonaws.com/role-arn": "${server-role.arn}"}}}),
            registration("kubernetes:core/v1:ConfigMap", "settings", {"data": {"a": "b"}}),
        ]
    changes = {c.name: c for c in resource_changes(fleet("server"), fleet("model-server"))}
    assert changes["server-role"].op == "replace"
    assert changes["server-policy"].op == "replace"  # a policy's role cannot change in place
    assert changes["server-policy"].replaced_by == ("role",)
    (annotation,) = changes["server-sa"].paths
    assert (changes["server-sa"].op, annotation.on_apply) == ("update", True)
    assert "settings" not in changes


def test_only_what_the_provider_computes_is_a_reference() -> None:
    def outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return placeholder_outputs(MockResourceArgs(type_, name, inputs, "", None, True))

    assert outputs("aws:s3/bucket:Bucket", "registry-bucket", {"bucketPrefix": "m-"}) == {
        "id": "${registry-bucket.id}", "arn": "${registry-bucket.arn}",
        "bucket": "${registry-bucket.bucket}",
        "bucketDomainName": "${registry-bucket.bucketDomainName}",
        "bucketRegionalDomainName": "${registry-bucket.bucketRegionalDomainName}",
        "hostedZoneId": "${registry-bucket.hostedZoneId}", "region": "${registry-bucket.region}"}
    named = outputs("aws:sqs/queue:Queue", "work", {"name": "modelfleet-dev-work"})
    assert named == {"id": "${work.id}", "arn": "${work.arn}", "url": "${work.url}"}
    assert outputs("pulumi:providers:aws", "aws", {"region": "eu-west-1"}) == {}
    assert outputs(DEPLOYMENT, "server", {"metadata": {"name": "server"}}) == {
        "id": "${server.id}"}
