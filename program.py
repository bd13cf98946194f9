"""The Pulumi program as a module: stack config -> validated release -> fleet -> outputs.

`__main__.py` runs it for `pulumi up`; the tests and `python -m modelfleet plan`
import and run the very same function under Pulumi's mock runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.artifact import ArtifactFile
from components.batch import queue_name
from components.cluster import ClusterSettings, GpuPlacement
from components.fleet import ModelFleet, ModelFleetArgs
from components.image import ImageBuild
from components.model import CandidateRelease, DeployedModel, DeployedModelArgs
from components.provenance import Provenance, StackScope
from components.registry import ModelRegistryArgs
from modelfleet.manifest.problems import ManifestError, Problem, SourceError
from modelfleet.release.release import ModelRelease, Release, load_release
from modelfleet.release.updates import (
    change_report,
    deployed_record,
    version_conflicts,
    version_history,
)
from modelfleet.stacks.config import with_key_lines
from modelfleet.stacks.settings import CONFIG_KEYS, NAMESPACE, StackSettings
from modelregistry.regions import region_problem


def read_settings() -> StackSettings:
    config = pulumi.Config(NAMESPACE)
    # Every key the stack sets is passed on, so that a misspelt one is an error. The
    # kubeconfig is a secret: only the provider reads it, with get_secret.
    keys = set(CONFIG_KEYS) | {key.removeprefix(f"{NAMESPACE}:") for key in stack_config_keys()
                               if key.startswith(f"{NAMESPACE}:")}
    values = {key: None if key == "kubeconfig" else config.get(key) for key in keys}
    return StackSettings.parse(values, f"stacks/Pulumi.{pulumi.get_stack()}.yaml")


def stack_config_keys() -> set[str]:
    """Every configuration key the engine hands the program (`pulumi up`, or the mocks)."""
    return set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())


def prepare() -> Release:
    """Everything validated before the first resource: or a clean failure, one line a problem."""
    try:
        stack_file = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
        region = aws_region()
        if not region:
            raise ManifestError([Problem(stack_file, None,
                                         "is required: the region of the registry and queues",
                                         path="aws:region")])
        wrong_region = region_problem(region)
        if wrong_region:
            raise ManifestError([Problem(stack_file, None, wrong_region, path="aws:region")])
        # Pulumi runs a program in its project's folder; paths are relative to it.
        return load_release(read_settings(), Path.cwd())
    except ManifestError as error:
        for problem in with_key_lines(error.problems, Path.cwd()):
            pulumi.log.error(str(problem))
        raise pulumi.RunError(f"{len(error.problems)} problem(s); nothing was declared") from None
    except SourceError as error:
        raise pulumi.RunError(str(error)) from None


def fleet_args(release: Release) -> ModelFleetArgs:
    settings = release.settings
    scope = StackScope(pulumi.get_project(), pulumi.get_stack(), settings.environment)
    cluster = cluster_settings(settings)
    return ModelFleetArgs(
        scope=scope,
        registry=ModelRegistryArgs(scope, settings.kms_key_arn,
                                   settings.noncurrent_version_days),
        cluster=cluster,
        models=tuple(model_args(model, scope, settings, cluster) for model in release.models),
        create_namespace=settings.create_namespace)


def cluster_settings(settings: StackSettings) -> ClusterSettings:
    return ClusterSettings(
        namespace=settings.namespace,
        oidc_provider_arn=settings.oidc_provider_arn or "",
        oidc_provider_url=settings.oidc_provider_url or "",
        allowed_namespaces=settings.allowed_namespaces,
        gpu=GpuPlacement(dict(settings.gpu_node_selector), settings.gpu_toleration_key),
        region=aws_region() or "",
        keda=settings.keda,
        keda_service_account=settings.keda_service_account,
        prometheus_address=settings.prometheus_address or "",
        gateway=settings.gateway,
        fetch_image=settings.fetch_image or "",
        prometheus=settings.prometheus,
        prometheus_namespace=settings.prometheus_namespace,
        monitoring_labels=dict(settings.monitoring_labels),
        endpoint_picker_image=settings.endpoint_picker_image or "")


def aws_region() -> str | None:
    return pulumi.Config("aws").get("region")


def model_args(model: ModelRelease, scope: StackScope, settings: StackSettings,
               cluster: ClusterSettings) -> DeployedModelArgs:
    spec = model.spec
    provenance = Provenance(spec.name, spec.version, spec.team, model.origin.commit,
                            model.origin.digest, scope)
    return DeployedModelArgs(
        spec=spec,
        provenance=provenance,
        environment=settings.environment,
        cluster=cluster,
        repository_name=f"{scope.project}/{scope.stack}/{spec.name}".lower(),
        queue_name=queue_name(scope.project, scope.stack, spec.name),
        manifest_file=settings.manifest,
        artifact_files=tuple(ArtifactFile(f.key, f.path, f.sha256)
                             for f in model.artifact_files),
        single_file_artifact=model.single_file_artifact,
        build=image_build(model, settings),
        untagged_image_days=settings.untagged_image_days,
        candidates=tuple(candidate_release(candidate, provenance, settings)
                         for candidate in model.candidates))


def image_build(model: ModelRelease, settings: StackSettings) -> ImageBuild | None:
    build = model.spec.image.build
    if build and model.build_context and model.dockerfile:
        return ImageBuild(model.build_context, model.dockerfile, dict(build.args),
                          settings.image_platform, model.build_digest)
    return None


def candidate_release(candidate: ModelRelease, provenance: Provenance,
                      settings: StackSettings) -> CandidateRelease:
    return CandidateRelease(
        name=candidate.candidate or "",
        spec=candidate.spec,
        provenance=provenance.for_candidate(candidate.candidate or "", candidate.spec.version),
        artifact_files=tuple(ArtifactFile(f.key, f.path, f.sha256)
                             for f in candidate.artifact_files),
        single_file_artifact=candidate.single_file_artifact,
        build=image_build(candidate, settings))


def providers() -> list[pulumi.ProviderResource]:
    """Explicit providers, so that no resource falls back to ambient credentials or region.

    `modelfleet:kubeconfig` is either a kubeconfig (kept secret) or the name of a
    context in the ambient kubeconfig; empty means the ambient current context.
    """
    region = aws_region()
    kubeconfig = pulumi.Config(NAMESPACE).get("kubeconfig") or ""
    secret = pulumi.runtime.is_config_secret(f"{NAMESPACE}:kubeconfig")
    if secret or "\n" in kubeconfig or kubeconfig.lstrip().startswith("{"):
        cluster = k8s.Provider("kubernetes",
                               kubeconfig=pulumi.Config(NAMESPACE).require_secret("kubeconfig"))
    elif kubeconfig:
        cluster = k8s.Provider("kubernetes", context=kubeconfig)
    else:
        cluster = k8s.Provider("kubernetes")
    return [aws.Provider("aws", region=region), cluster]


def report_changes(release: Release, fleet: ModelFleet) -> pulumi.StackReference:
    """Log the diff against what this stack deployed last, read from its own outputs, and
    guard its versions; the reference, whose record the new one carries forward."""
    stack = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    previous = pulumi.StackReference("last-deployment", stack_name=stack,
                                     opts=pulumi.ResourceOptions(parent=fleet))
    previous.outputs.apply(lambda outputs: log_lines(change_report(outputs, release)))
    previous.outputs.apply(lambda outputs: guard_versions(outputs, release))
    return previous


def guard_versions(outputs: Any, release: Release) -> None:
    """A version whose artifact changed: refused in stacks that require approval, else warned.

    Refusing fails the update from here, once the previous outputs are read.
    """
    conflicts = version_conflicts(outputs, release)
    if not conflicts:
        return
    if not release.settings.require_approved:
        for line in conflicts:
            pulumi.log.warn(line)
        return
    for line in conflicts:
        pulumi.log.error(line)
    raise pulumi.RunError(f"{len(conflicts)} model version(s) would name another artifact; "
                          "bump their versions")


def log_lines(lines: list[str]) -> None:
    for line in lines:
        pulumi.log.info(line)


def export_outputs(fleet: ModelFleet, release: Release, previous: pulumi.StackReference) -> None:
    pulumi.export("registry", {"bucket": fleet.registry.bucket_name,
                               "keyArn": fleet.registry.key_arn})
    pulumi.export("models", {model.spec.name: model_outputs(model, fleet.models[model.spec.name])
                             for model in release.models})
    pulumi.export("manifest", deployed_record(release))
    # Known once the last deployment's outputs are read (a real preview reads them).
    pulumi.export("versionHistory", previous.outputs.apply(
        lambda outputs: version_history(outputs, release)))


def model_outputs(model: ModelRelease, deployed: DeployedModel) -> dict[str, Any]:
    outputs: dict[str, Any] = {
        "version": model.spec.version,
        "image": deployed.image_reference,
        "artifact": deployed.artifact_uri,
        "metadata": deployed.metadata_key,
    }
    if deployed.endpoint is not None:
        outputs["endpoint"] = deployed.endpoint
    if deployed.workers is not None:
        outputs["queueUrl"] = deployed.workers.queue_url
        outputs["deadLetterQueueUrl"] = deployed.workers.dead_letter_queue_url
        outputs["outputPrefix"] = deployed.workers.output_prefix
    return outputs


def main() -> None:
    release = prepare()
    fleet = ModelFleet("fleet", fleet_args(release),
                       pulumi.ResourceOptions(providers=providers()))
    previous = report_changes(release, fleet)
    export_outputs(fleet, release, previous)
