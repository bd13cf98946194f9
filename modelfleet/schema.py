"""The manifest format `modelfleet/v1` as typed, frozen data: the one definition of every field.

`ModelSpec`, `Serving` and `Batch` describe a model once defaults and
environment overrides are merged in; their defaults are modelfleet's built-in
defaults. The classes for what a manifest may *write* (`ManifestDocument`,
`ModelEntry`, `Defaults`, `ModelOverride`) are derived from them, so a field is
declared, constrained and documented in one place, and the JSON Schema that
editors use is exported from the same classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from modelfleet.quantities import cpu_problem, gpu_problem, memory_problem, normalize_quantity
from modelfleet.semver import SEMVER_PATTERN, is_semver

API_VERSION = "modelfleet/v1"
MODEL_NAME_MAX = 40
RESERVED_ENV = frozenset({
    "MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_SHA256", "MODEL_MODE", "MODEL_PORT",
    "MODEL_OBJECT_VERSION",
    "QUEUE_URL", "OUTPUT_URI", "INPUT_URI", "PARTITIONS", "JOB_COMPLETION_INDEX",
    "VISIBILITY_TIMEOUT_SECONDS", "AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
})
RESERVED_BUILD_ARGS = frozenset({"MODEL_NAME", "MODEL_VERSION"})

_DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SHA256 = r"^[a-f0-9]{64}$"
_S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^?#]+$"
_VERSION_ID = r"^[!-~]{1,1024}$"
VERSION_ID_MAX = 1024
_IMAGE_NAME = r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
_IMAGE_REF = rf"^{_IMAGE_NAME}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?@sha256:[a-f0-9]{{64}}$"


def _fail(reason: str) -> PydanticCustomError:
    return PydanticCustomError("modelfleet", "{reason}", {"reason": reason})


def _checked(check: Callable[[Any], str | None]) -> AfterValidator:
    """An after-validator that turns `check`'s reason into a validation error."""

    def run(value: Any) -> Any:
        reason = check(value)
        if reason:
            raise _fail(reason)
        return value

    return AfterValidator(run)


def _pattern_check(pattern: str, explain: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern)
    return lambda value: None if compiled.match(value) else f"'{value}' {explain}"


def _dns_label(value: str) -> str | None:
    if len(value) > MODEL_NAME_MAX:
        return (f"'{value}' is {len(value)} characters; at most {MODEL_NAME_MAX}, so that "
                "derived names (`<name>-worker`, IAM roles) fit Kubernetes' and AWS's limits")
    if not re.match(_DNS_LABEL, value):
        return (f"'{value}' is not a DNS label: lowercase letters, digits and '-', "
                "starting with a letter and ending with a letter or digit")
    return None


def _semver(value: str) -> str | None:
    if is_semver(value):
        return None
    return f"'{value}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.2)"


def _plain_key(supported: str) -> Callable[[str], str | None]:
    """S3 keys are given as they are: a `?query` or `#fragment` would be read as part of the key."""

    def check(value: str) -> str | None:
        if "?" in value or "#" in value:
            return (f"'{value}' carries a query or fragment, which S3 would read as part of "
                    f"the key; {supported}")
        return None

    return check


def _version_id(value: str) -> str | None:
    if len(value) > VERSION_ID_MAX:
        return (f"is {len(value)} characters; an S3 version ID has at most "
                f"{VERSION_ID_MAX}")
    if not re.match(_VERSION_ID, value):
        return (f"'{value}' is not an S3 version ID (printable characters without spaces, "
                "as `aws s3api list-object-versions` shows it)")
    return None


def _relative_path(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if value.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", value):
        return f"'{value}' is absolute; give a path relative to the manifest's folder"
    return None


def _image_ref(value: str) -> str | None:
    if re.match(_IMAGE_REF, value):
        return None
    if "@sha256:" not in value:
        return (f"'{value}' is not pinned by digest; append @sha256:<digest> "
                "(a tag can be moved, a digest cannot)")
    return f"'{value}' is not an image reference of the form registry/name[:tag]@sha256:<64 hex>"


def _env_keys(reserved: frozenset[str], what: str) -> Callable[[dict[str, str]], str | None]:
    def check(values: dict[str, str]) -> str | None:
        for key in values:
            if not re.match(_ENV_NAME, key):
                return f"'{key}' is not a valid {what} name (letters, digits and '_')"
            if key in reserved:
                return f"'{key}' is set by modelfleet and cannot be overridden"
        return None

    return check


def _text_schema(pattern: str, description: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern, "description": description})


def _quantity_schema(example: str) -> WithJsonSchema:
    return WithJsonSchema({"type": ["string", "number"],
                           "description": f"Kubernetes quantity, e.g. {example}"})


# YAML reads `cpu: 2` as a number; Kubernetes wants the text "2".
_NUMBER_AS_TEXT = BeforeValidator(
    lambda v: normalize_quantity(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
    else v)

DnsLabel = Annotated[str, _checked(_dns_label),
                     _text_schema(_DNS_LABEL, "DNS-1035 label, at most 40 characters")]
SemVer = Annotated[str, _checked(_semver),
                   _text_schema(SEMVER_PATTERN, "semantic version, e.g. 1.4.2")]
Sha256 = Annotated[str, _checked(_pattern_check(
    _SHA256, "is not a sha256 digest (64 lowercase hex digits)")),
    _text_schema(_SHA256, "sha256 of the artifact, 64 lowercase hex digits")]
S3Uri = Annotated[str, _checked(_plain_key("give the key or prefix only")),
                  _checked(_pattern_check(_S3_URI, "is not an S3 URI of the form s3://bucket/key")),
                  _text_schema(_S3_URI, "s3://bucket/key of an object, or a prefix ending in /")]
ArtifactUri = Annotated[str, _checked(_plain_key(
    "give the key only and pin an object version with `artifact.versionId`")),
    _checked(_pattern_check(_S3_URI, "is not an S3 URI of the form s3://bucket/key")),
    _text_schema(_S3_URI, "s3://bucket/key of an artifact that is referenced, not copied")]
VersionId = Annotated[str, _checked(_version_id),
                      _text_schema(_VERSION_ID, "S3 object version ID (opaque, at most 1024 "
                                                "characters)")]
RelativePath = Annotated[str, _checked(_relative_path),
                         _text_schema(r"^[^/]", "path relative to the manifest's folder")]
ImageRef = Annotated[str, _checked(_image_ref),
                     _text_schema(_IMAGE_REF, "prebuilt image, pinned: registry/name@sha256:...")]
EnvVars = Annotated[dict[str, str], _checked(_env_keys(RESERVED_ENV, "environment variable"))]
BuildArgs = Annotated[dict[str, str], _checked(_env_keys(RESERVED_BUILD_ARGS, "build argument"))]
Cpu = Annotated[str, _NUMBER_AS_TEXT, _checked(cpu_problem), _quantity_schema("500m or 2")]
Memory = Annotated[str, _NUMBER_AS_TEXT, _checked(memory_problem),
                   _quantity_schema("512Mi or 2Gi")]
Gpu = Annotated[str, _NUMBER_AS_TEXT, _checked(gpu_problem), _quantity_schema("0 or 1")]
EnvironmentName = Annotated[str, _checked(_pattern_check(
    _DNS_LABEL, "is not an environment name (lowercase letters, digits and '-')"))]


class Strict(BaseModel):
    """Unknown keys are errors, values are immutable, and YAML types are not coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              populate_by_name=True, use_attribute_docstrings=True)


class Replicas(Strict):
    min: int = Field(2, ge=1)
    """Fewest pods; the autoscaler never goes below it."""
    max: int = Field(10, ge=1)
    """Most pods; the autoscaler never goes above it."""


class Resources(Strict):
    cpu: Cpu = "500m"
    """CPU request and limit per pod."""
    memory: Memory = "1Gi"
    """Memory request and limit per pod."""
    gpu: Gpu = "0"
    """NVIDIA GPUs per pod (requested as nvidia.com/gpu)."""


class Serving(Strict):
    port: int = Field(8080, ge=1024, le=65535)
    """Port the model server listens on; 1024 or above, since pods run as non-root."""
    replicas: Replicas = Replicas()
    target_cpu_utilization: int = Field(70, ge=1, le=100, alias="targetCPUUtilization")
    """Average CPU use, in percent of the request, that the autoscaler aims for."""
    resources: Resources = Resources()
    env: EnvVars = {}
    """Extra environment variables for the model server."""


class BatchRun(Strict):
    """A one-off run over a partitioned input, as a Kubernetes Indexed Job `<model>-<id>`."""

    id: DnsLabel
    """Names the run's Job and its output folder `outputs/<model>/<id>/`; never reused."""
    input: S3Uri
    """One object (its lines are dealt to partitions) or a prefix ending in `/` (its
    objects are)."""
    partitions: int = Field(ge=1, le=100000)
    """How many pieces the input is cut into; one pod per piece."""
    parallelism: int | None = Field(None, ge=1)
    """Pods at a time; default: partitions, at most maxWorkers."""


class Batch(Strict):
    min_workers: int = Field(0, ge=0, alias="minWorkers")
    """Workers kept when the queue is empty; 0 scales to zero."""
    max_workers: int = Field(10, ge=1, alias="maxWorkers")
    """Most workers, however deep the queue."""
    messages_per_worker: int = Field(5, ge=1, alias="messagesPerWorker")
    """Queue depth per worker that the scaler aims for."""
    visibility_timeout_seconds: int = Field(900, ge=1, le=43200, alias="visibilityTimeoutSeconds")
    """How long a message stays hidden while a worker processes it (SQS allows up to 12 h)."""
    max_receive_count: int = Field(5, ge=1, le=1000, alias="maxReceiveCount")
    """Deliveries before a message moves to the dead-letter queue."""
    cooldown_seconds: int = Field(300, ge=0, le=86400, alias="cooldownSeconds")
    """Seconds of an empty queue before the workers scale to minWorkers."""
    resources: Resources = Resources()
    """CPU, memory and GPUs of each worker and each run's pods."""
    env: EnvVars = {}
    """Extra environment variables for workers and runs."""
    runs: list[BatchRun] = []
    """Partitioned runs; adding one starts it, the others are left alone."""


class Artifact(Strict):
    uri: ArtifactUri | None = None
    """An artifact already in S3; referenced, not copied."""
    version_id: VersionId | None = Field(None, alias="versionId")
    """Pins the exact S3 object version of `uri` (one object, in a versioned bucket): the
    model server and the workers read that version, whatever the key holds later."""
    path: RelativePath | None = None
    """A file or folder next to the manifest; uploaded to the registry."""
    sha256: Sha256 | None = None
    """Integrity pin: the model server refuses an artifact with another digest."""


class Build(Strict):
    context: RelativePath
    """Folder sent to the build, relative to the manifest."""
    dockerfile: RelativePath | None = None
    """Dockerfile, relative to the manifest; default: `Dockerfile` in the context."""
    args: BuildArgs = {}
    """Docker build arguments; MODEL_NAME and MODEL_VERSION are always passed."""


class Image(Strict):
    build: Build | None = None
    """Build the image from a Dockerfile and push it to the model's repository."""
    ref: ImageRef | None = None
    """Deploy a prebuilt image, pinned by digest."""


Stage = Literal["candidate", "approved"]


class ModelSpec(Strict):
    """One model as deployed to one environment: defaults and overrides already merged."""

    name: DnsLabel
    """Unique in the manifest; names every resource of the model, so renames are rare."""
    team: DnsLabel
    """Owning team; a stack may deploy one team's models only."""
    version: SemVer
    """Semantic version of the model being deployed."""
    stage: Stage = "candidate"
    """Only `approved` models may go to stacks that require approval."""
    artifact: Artifact
    """Where the model's weights come from."""
    image: Image
    """The container that serves the model."""
    serving: Serving | None = None
    """Online endpoint; merged over `defaults.serving`."""
    batch: Batch | None = None
    """Queue-driven batch workers; merged over `defaults.batch`."""


def partial(model: type[BaseModel], name: str, drop: frozenset[str] = frozenset()) -> Any:
    """A copy of `model` where every field is optional and nested models are partial too.

    Defaults and overrides are written in the same shape as a model but name only the
    fields they change; checking them against a partial class catches unknown keys and
    bad values where they are written, not later in a merged model.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in drop:
            continue
        annotation = _partial_annotation(info.annotation, name)
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[field_name] = (annotation | None,
                              Field(None, alias=info.alias, description=info.description))
    return create_model(name, __base__=Strict, __doc__=model.__doc__, **fields)


def _partial_annotation(annotation: Any, prefix: str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return partial(annotation, f"{prefix}{annotation.__name__}")
    if get_origin(annotation) in (Union, UnionType):  # X | None
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _partial_annotation(args[0], prefix)
    return annotation


if TYPE_CHECKING:  # to a type checker, a patch is the class it patches
    ServingPatch = Serving
    BatchPatch = Batch
    ModelOverride = ModelSpec
else:
    ServingPatch = partial(Serving, "ServingPatch")
    BatchPatch = partial(Batch, "BatchPatch")
    ModelOverride = partial(ModelSpec, "ModelOverride", drop=frozenset({"name", "team"}))


class ModelEntry(ModelSpec):
    """A model as written in the manifest."""

    serving: ServingPatch | None = None
    batch: BatchPatch | None = None
    environments: dict[EnvironmentName, ModelOverride] = {}
    """Per-environment overrides, deep-merged over the model."""


class Defaults(Strict):
    """Settings merged under every model that has the section (serving, batch)."""

    serving: ServingPatch | None = None
    batch: BatchPatch | None = None


class ManifestDocument(Strict):
    """A model manifest, format modelfleet/v1."""

    api_version: Literal["modelfleet/v1"] = Field(alias="apiVersion")
    defaults: Defaults = Defaults()
    models: list[ModelEntry]
