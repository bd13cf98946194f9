"""A model's container image: its ECR repository, and the image built into it or passed through.

Pods run the image by digest (`repo@sha256:...`), never by tag: a rebuild
changes the digest and so rolls the pods, and nothing can move a tag under them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components.provenance import Provenance
from modelfleet.release.images import image_tag

DEFAULT_PLATFORM = "linux/amd64"


@dataclass(frozen=True)
class ImageBuild:
    """A build from a folder with a Dockerfile (already checked out at the deployed ref)."""

    context: str
    """Absolute path of the build context."""
    dockerfile: str
    """Absolute path of the Dockerfile."""
    args: Mapping[str, str] = field(default_factory=dict)
    platform: str = DEFAULT_PLATFORM
    digest: str | None = None
    """sha256 of what the image is built from (context files, Dockerfile, args): in its tag."""


@dataclass(frozen=True)
class ModelImageArgs:
    provenance: Provenance
    repository_name: str
    """ECR repository name, e.g. `modelfleet/prod/fraud-detector`; never changes."""
    kms_key_arn: pulumi.Input[str]
    build: ImageBuild | None = None
    ref: str | None = None
    """A prebuilt image, already pinned by digest; deployed as given."""
    untagged_expiry_days: int = 14
    """Untagged images (layers of failed or superseded pushes) expire after this many days."""


class ModelImage(pulumi.ComponentResource):
    """The model's repository and the image that serves it, pinned by digest."""

    reference: pulumi.Output[str]
    """`registry/name@sha256:...`: what pods run."""
    repository_url: pulumi.Output[str]
    repository: aws.ecr.Repository
    """Where candidates' images are built into too."""

    def __init__(self, name: str, args: ModelImageArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelfleet:image:ModelImage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        repository = model_repository(f"{name}-repo", args, pulumi.ResourceOptions(
            parent=self, retain_on_delete=True))
        aws.ecr.LifecyclePolicy(f"{name}-repo-lifecycle", repository=repository.name,
                                policy=untagged_expiry_policy(args.untagged_expiry_days),
                                opts=child)
        if args.build is not None:
            self.reference = built_image(f"{name}-image", args.provenance, args.build,
                                         repository, child)
        elif args.ref is not None:
            self.reference = pulumi.Output.from_input(args.ref)
        else:
            raise ValueError(f"model {name}: an image needs a build or a ref")
        self.repository = repository
        self.repository_url = repository.repository_url
        self.register_outputs({"reference": self.reference,
                               "repository_url": self.repository_url})


def model_repository(name: str, args: ModelImageArgs,
                     opts: pulumi.ResourceOptions) -> aws.ecr.Repository:
    return aws.ecr.Repository(
        name,
        name=args.repository_name,
        image_tag_mutability="IMMUTABLE",
        image_scanning_configuration={"scan_on_push": True},
        encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
        force_delete=False,
        tags=args.provenance.aws_tags(),
        opts=opts)


def untagged_expiry_policy(days: int) -> str:
    """Tagged images are model versions and are kept; untagged leftovers expire."""
    return json.dumps({"rules": [{
        "rulePriority": 1,
        "description": f"expire untagged images after {days} days",
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                      "countUnit": "days", "countNumber": days},
        "action": {"type": "expire"},
    }]})


def build_args(provenance: Provenance, build: ImageBuild) -> dict[str, str]:
    """The manifest's build args plus the model's identity, which the image records."""
    return {**build.args, "MODEL_NAME": provenance.model, "MODEL_VERSION": provenance.version}


def built_image(name: str, provenance: Provenance, build: ImageBuild,
                repository: aws.ecr.Repository,
                opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """Build, tag with the version and its build digest (`image_tag`), push with ECR
    credentials; the digest-pinned reference."""
    token = aws.ecr.get_authorization_token_output(
        registry_id=repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=opts.parent))
    image = docker.Image(
        name,
        image_name=pulumi.Output.concat(repository.repository_url, ":",
                                        image_tag(provenance.version, build.digest)),
        build=docker.DockerBuildArgs(
            context=build.context,
            dockerfile=build.dockerfile,
            platform=build.platform,
            args=build_args(provenance, build)),
        registry=docker.RegistryArgs(
            server=repository.repository_url,
            username=token.user_name,
            password=pulumi.Output.secret(token.password)),
        build_on_preview=False,
        skip_push=False,
        opts=opts)
    return image.repo_digest
