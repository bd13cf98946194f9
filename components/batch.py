"""A model's batch workers: a queue, workers that KEDA scales on its depth (to zero), and runs.

Scaling past one machine is Kubernetes' and KEDA's job; this component only
declares it. KEDA creates the HorizontalPodAutoscaler for a ScaledObject, so
none is declared here unless KEDA is absent, and the Deployment never sets
`spec.replicas`. A worker gets a termination grace period longer than the
visibility timeout: on scale-down it finishes its message instead of dropping it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.autoscaling import KEDA_API, SWITCHABLE
from components.cluster import ClusterSettings
from components.identity import (
    STS_AUDIENCE,
    WorkloadIdentity,
    WorkloadIdentityArgs,
    read_uri,
)
from components.network import worker_ingress
from components.podspec import (
    ModelContainer,
    PodOptions,
    hardened_pod_template,
    http_probes,
    metrics_annotations,
    model_env,
    rolling_update,
)
from components.provenance import Provenance
from components.queue import WorkQueue, WorkQueueArgs
from components.serving import LIVE_PATH, READY_PATH
from components.workload import ModelWorkloadArgs
from modelfleet.manifest.schema import Batch, BatchRun
from modelfleet.release.layout import outputs_prefix, run_prefix

WORKER = "worker"
RUN = "run"
HEALTH_PORT = 8080
SHUTDOWN_MARGIN_SECONDS = 30
POLLING_SECONDS = 15
RUN_TTL_SECONDS = 7 * 24 * 3600
RUN_RETRIES_PER_PARTITION = 3


@dataclass(frozen=True)
class BatchWorkersArgs(ModelWorkloadArgs):
    queue_name: str
    """Physical name of the work queue; stable for the model's life."""

    @property
    def batch(self) -> Batch:
        if self.spec.batch is None:
            raise ValueError(f"model {self.spec.name} has no batch section")
        return self.spec.batch


class BatchWorkers(pulumi.ComponentResource):
    """Queue, worker identity, workers, their scaler, and the model's partitioned runs."""

    queue_url: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]
    output_prefix: pulumi.Output[str]

    def __init__(self, name: str, args: BatchWorkersArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:batch:BatchWorkers", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        batch = args.batch
        queue = WorkQueue(f"{name}-queue", WorkQueueArgs(
            provenance=args.provenance, queue_name=args.queue_name,
            visibility_timeout_seconds=batch.visibility_timeout_seconds,
            max_receive_count=batch.max_receive_count), child)
        identity = WorkloadIdentity(f"{name}-worker", worker_identity(args, queue), child)
        outputs = pulumi.Output.concat("s3://", args.registry.bucket_name, "/",
                                       outputs_prefix(name))
        deployment = k8s.apps.v1.Deployment(
            f"{name}-worker", metadata=object_meta(f"{name}-worker", args, WORKER),
            spec=worker_deployment_spec(args, identity, queue.url, outputs), opts=child)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-worker", metadata=object_meta(f"{name}-worker", args, WORKER),
            spec=no_ingress(args.provenance, args.cluster), opts=child)
        if args.cluster.keda:
            scaler = scaler_role(f"{name}-scaler", args, queue.arn, child)
            keda_scaler(f"{name}-worker", args, deployment, queue.url, scaler, child)
        else:
            cpu_autoscaler(f"{name}-worker", args, deployment, child)
            pulumi.log.warn(
                f"model '{name}': KEDA is not installed (modelfleet:keda is false), so its "
                f"workers scale on CPU between {max(1, batch.min_workers)} and "
                f"{batch.max_workers} and never to zero", resource=self)
        for run in batch.runs:
            run_job(name, run, args, identity, child)
        self.queue_url = queue.url
        self.dead_letter_queue_url = queue.dead_letter_url
        self.output_prefix = outputs
        self.register_outputs({"queue_url": self.queue_url,
                               "dead_letter_queue_url": self.dead_letter_queue_url,
                               "output_prefix": self.output_prefix})


def object_meta(name: str, args: BatchWorkersArgs, component: str,
                extra: dict[str, str] | None = None,
                annotations: dict[str, str] | None = None) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(
        name=name, namespace=args.cluster.object_namespace,
        labels={**args.provenance.labels(component), **(extra or {})},
        annotations={**args.provenance.annotations(), **(annotations or {})})


def worker_identity(args: BatchWorkersArgs, queue: WorkQueue) -> WorkloadIdentityArgs:
    """Its own queue; read its model, its inputs and its runs' inputs; write its outputs."""
    model = args.spec.name
    external = args.spec.artifact.uri
    run_inputs = [run.input for run in args.batch.runs]

    def statements(values: Any) -> list[dict[str, Any]]:
        queue_arn, bucket, key_arn = values
        registry = f"arn:aws:s3:::{bucket}"
        found: list[dict[str, Any]] = [
            # What images/modelserver/batch.py calls, nothing more: it is given QUEUE_URL
            # (no GetQueueUrl) and never reads the queue's attributes (KEDA's scaler role
            # reads the depth).
            {"Sid": "ConsumeOwnQueue", "Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility"],
             "Resource": queue_arn},
            {"Sid": "ReadModelAndInputs", "Effect": "Allow", "Action": ["s3:GetObject"],
             "Resource": [f"{registry}/models/{model}/*", f"{registry}/inputs/{model}/*",
                          f"{registry}/outputs/{model}/*"]},
            {"Sid": "WriteOutputs", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
             "Resource": f"{registry}/outputs/{model}/*"},
            {"Sid": "ListOwnPrefixes", "Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": registry,
             "Condition": {"StringLike": {"s3:prefix": [
                 f"models/{model}/*", f"inputs/{model}/*", f"outputs/{model}/*"]}}},
            {"Sid": "UseRegistryKey", "Effect": "Allow",
             "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn},
        ]
        if external:
            found += read_uri(external, "ReadArtifact", args.spec.artifact.version_id)
        for index, uri in enumerate(run_inputs):
            found += read_uri(uri, f"ReadRunInput{index}")
        return found

    return WorkloadIdentityArgs(
        provenance=args.provenance, cluster=args.cluster, service_account=f"{model}-worker",
        component=WORKER, statements=statements,
        policy_inputs=[queue.arn, args.registry.bucket_name, args.registry.key_arn])


def worker_container(args: BatchWorkersArgs, name: str, mode: str,
                     extra: dict[str, pulumi.Input[str]]) -> ModelContainer:
    """The model image in `worker` (queue) or `job` (one partition of a run) mode."""
    batch = args.batch
    env = model_env(args.provenance, args.artifact_uri, args.spec.artifact.sha256, {},
                    object_version=args.spec.artifact.version_id)
    env += [("MODEL_MODE", mode), ("MODEL_PORT", str(HEALTH_PORT)),
            ("AWS_REGION", args.cluster.region), *extra.items(), *sorted(batch.env.items())]
    return ModelContainer(
        name=name, image=args.image, env=env,
        resources=batch.resources,
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=HEALTH_PORT,
                                             protocol="TCP")],
        probes=http_probes("http", READY_PATH, LIVE_PATH, batch.startup_seconds)
        if mode == WORKER else None)


def worker_deployment_spec(args: BatchWorkersArgs, identity: WorkloadIdentity,
                           queue_url: pulumi.Input[str],
                           outputs: pulumi.Input[str]) -> k8s.apps.v1.DeploymentSpecArgs:
    batch = args.batch
    container = worker_container(args, WORKER, "worker", {
        "QUEUE_URL": queue_url, "OUTPUT_URI": outputs,
        "VISIBILITY_TIMEOUT_SECONDS": str(batch.visibility_timeout_seconds)})
    return k8s.apps.v1.DeploymentSpecArgs(
        selector=k8s.meta.v1.LabelSelectorArgs(match_labels=args.provenance.selector(WORKER)),
        strategy=rolling_update(batch),
        revision_history_limit=5,
        template=hardened_pod_template(
            args.provenance, WORKER, container, args.cluster,
            PodOptions(service_account=identity.service_account_name, settings=batch,
                       termination_grace_seconds=grace_period(batch),
                       annotations=metrics_annotations(HEALTH_PORT, args.cluster))))


def no_ingress(provenance: Provenance,
               cluster: ClusterSettings) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """Workers and run pods take no connections but Prometheus' scrapes (kubelet probes are
    not subject to it)."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(
            match_labels={"app.kubernetes.io/name": provenance.model},
            match_expressions=[k8s.meta.v1.LabelSelectorRequirementArgs(
                key="app.kubernetes.io/component", operator="In", values=[WORKER, RUN])]),
        policy_types=["Ingress"], ingress=worker_ingress(cluster, HEALTH_PORT))


def grace_period(batch: Batch) -> int:
    """Longer than the visibility timeout: a worker told to stop finishes its message."""
    return batch.visibility_timeout_seconds + SHUTDOWN_MARGIN_SECONDS


def scaler_role(name: str, args: BatchWorkersArgs, queue_arn: pulumi.Input[str],
                opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """What KEDA assumes to read the queue's depth, and nothing more."""
    namespace, _, account = args.cluster.keda_service_account.partition("/")
    issuer = args.cluster.oidc_provider_url
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": args.cluster.oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{account}",
            f"{issuer}:aud": STS_AUDIENCE}}}]}
    role = aws.iam.Role(name, assume_role_policy=pulumi.Output.json_dumps(trust),
                        description=f"KEDA reads the queue depth of model {args.spec.name}",
                        max_session_duration=3600, tags=args.provenance.aws_tags(), opts=opts)
    aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=pulumi.Output.json_dumps({
        "Version": "2012-10-17", "Statement": [{
            "Sid": "ReadQueueDepth", "Effect": "Allow", "Action": ["sqs:GetQueueAttributes"],
            "Resource": queue_arn}]}), opts=opts)
    return role


def keda_scaler(name: str, args: BatchWorkersArgs, deployment: k8s.apps.v1.Deployment,
                queue_url: pulumi.Input[str], scaler: aws.iam.Role,
                opts: pulumi.ResourceOptions) -> None:
    batch = args.batch
    k8s.apiextensions.CustomResource(
        f"{name}-auth", api_version=KEDA_API, kind="TriggerAuthentication",
        metadata=object_meta(name, args, WORKER),
        spec={"podIdentity": {"provider": "aws", "roleArn": scaler.arn}}, opts=opts)
    k8s.apiextensions.CustomResource(
        name, api_version=KEDA_API, kind="ScaledObject",
        metadata=object_meta(name, args, WORKER),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": deployment.metadata.name},
            "pollingInterval": POLLING_SECONDS,
            "cooldownPeriod": batch.cooldown_seconds,
            "minReplicaCount": batch.min_workers,
            "maxReplicaCount": batch.max_workers,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                "stabilizationWindowSeconds": 300,
                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}}},
            "triggers": [{
                "type": "aws-sqs-queue",
                "authenticationRef": {"name": name},
                "metadata": {"queueURL": queue_url,
                             "queueLength": str(batch.messages_per_worker),
                             "awsRegion": args.cluster.region,
                             "scaleOnInFlight": "true"},
            }],
        },
        opts=opts)


def cpu_autoscaler(name: str, args: BatchWorkersArgs, deployment: k8s.apps.v1.Deployment,
                   opts: pulumi.ResourceOptions) -> None:
    """Without KEDA: a plain HPA on CPU, which cannot scale to zero."""
    batch = args.batch
    k8s.autoscaling.v2.HorizontalPodAutoscaler(
        name, metadata=object_meta(name, args, WORKER, annotations=SWITCHABLE),
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=deployment.metadata.name),
            min_replicas=max(1, batch.min_workers),
            max_replicas=batch.max_workers,
            metrics=[k8s.autoscaling.v2.MetricSpecArgs(
                type="Resource", resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                    name="cpu", target=k8s.autoscaling.v2.MetricTargetArgs(
                        type="Utilization", average_utilization=70)))]),
        opts=opts)


def run_job(model: str, run: BatchRun, args: BatchWorkersArgs, identity: WorkloadIdentity,
            opts: pulumi.ResourceOptions) -> k8s.batch.v1.Job:
    """An Indexed Job: pod i works on partition i of the input.

    Declared once and then left alone: a Job's pod template is immutable, and a
    finished run is history, so later updates (a version bump) never touch it, and
    removing the run from the manifest does not kill it; its TTL cleans it up.
    """
    name = f"{model}-{run.id}"
    batch = args.batch
    parallelism = run.parallelism or min(run.partitions, batch.max_workers)
    container = worker_container(args, RUN, "job", {
        "INPUT_URI": run.input, "PARTITIONS": str(run.partitions),
        "OUTPUT_URI": pulumi.Output.concat("s3://", args.registry.bucket_name, "/",
                                           run_prefix(model, run.id))})
    run_label = {"modelfleet.dev/run": run.id}
    return k8s.batch.v1.Job(
        name,
        metadata=object_meta(name, args, RUN, run_label),
        spec=k8s.batch.v1.JobSpecArgs(
            completion_mode="Indexed",
            completions=run.partitions,
            parallelism=parallelism,
            backoff_limit_per_index=RUN_RETRIES_PER_PARTITION,
            ttl_seconds_after_finished=RUN_TTL_SECONDS,
            template=hardened_pod_template(
                args.provenance, RUN, container, args.cluster,
                PodOptions(service_account=identity.service_account_name, settings=batch,
                           termination_grace_seconds=SHUTDOWN_MARGIN_SECONDS,
                           restart_policy="Never", extra_labels=run_label))),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            ignore_changes=["spec", "metadata"], retain_on_delete=True)))


def queue_name(project: str, stack: str, model: str) -> str:
    """`<project>-<stack>-<model>`, in the characters SQS allows."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", f"{project}-{stack}-{model}")[:76]
