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
from collections.abc import Callable, Sequence
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
    model_validator,
)
from pydantic_core import PydanticCustomError

from modelfleet.manifest.quantities import (
    canonical_quantity,
    cpu_problem,
    gpu_problem,
    memory_problem,
    normalize_quantity,
)
from modelfleet.manifest.semver import SEMVER_PATTERN, is_semver

API_VERSION = "modelfleet/v1"
MODEL_NAME_MAX = 40
RESERVED_ENV = frozenset({
    "MODEL_NAME", "MODEL_VERSION", "MODEL_URI", "MODEL_SHA256", "MODEL_MODE", "MODEL_PORT",
    "MODEL_OBJECT_VERSION",
    "QUEUE_URL", "OUTPUT_URI", "INPUT_URI", "PARTITIONS", "JOB_COMPLETION_INDEX",
    "VISIBILITY_TIMEOUT_SECONDS", "AWS_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "MODEL_GRPC_PORT",
})
RESERVED_BUILD_ARGS = frozenset({"MODEL_NAME", "MODEL_VERSION"})

_DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SHA256 = r"^[a-f0-9]{64}$"
_S3_URI = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[^?#]+$"
_VERSION_ID = r"^[!-~]{1,1024}$"
VERSION_ID_MAX = 1024
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_INT_OR_PERCENT = r"^[0-9]+%$"
_HTTP_PATH = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$"
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


def _object_path(value: str) -> str | None:
    """A key below the artifact's prefix: fetched to a folder, so it cannot leave either."""
    parts = value.split("/")
    if not value.strip():
        return "must not be empty"
    if value.startswith("/") or any(part in ("", ".", "..") for part in parts):
        return (f"'{value}' is outside the artifact's prefix; give the key below `uri` "
                "(no leading '/', no '.' or '..' segments, no empty segments)")
    return None


def _image_ref(value: str) -> str | None:
    if re.match(_IMAGE_REF, value):
        return None
    if "@sha256:" not in value:
        return (f"'{value}' is not pinned by digest; append @sha256:<digest> "
                "(a tag can be moved, a digest cannot)")
    return f"'{value}' is not an image reference of the form registry/name[:tag]@sha256:<64 hex>"


image_ref_problem = _image_ref
"""Why a text is not an image reference pinned by digest (None: it is one)."""


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
ObjectPath = Annotated[str, _checked(_object_path),
                       _text_schema(r"^[^/]", "object key relative to the artifact's prefix")]
RelativePath = Annotated[str, _checked(_relative_path),
                         _text_schema(r"^[^/]", "path relative to the manifest's folder")]
ImageRef = Annotated[str, _checked(_image_ref),
                     _text_schema(_IMAGE_REF, "prebuilt image, pinned: registry/name@sha256:...")]
EnvVars = Annotated[dict[str, str], _checked(_env_keys(RESERVED_ENV, "environment variable"))]
BuildArgs = Annotated[dict[str, str], _checked(_env_keys(RESERVED_BUILD_ARGS, "build argument"))]
# Equal quantities are one spelling (`1000m` is `1`, `2048Mi` is `2Gi`): the one Kubernetes
# stores, so that a respelling changes nothing in a diff, a plan or an update.
_CANONICAL = AfterValidator(canonical_quantity)
Cpu = Annotated[str, _NUMBER_AS_TEXT, _checked(cpu_problem), _CANONICAL,
                _quantity_schema("500m or 2")]
Memory = Annotated[str, _NUMBER_AS_TEXT, _checked(memory_problem), _CANONICAL,
                   _quantity_schema("512Mi or 2Gi")]
Gpu = Annotated[str, _NUMBER_AS_TEXT, _checked(gpu_problem), _CANONICAL,
                _quantity_schema("0 or 1")]
EnvironmentName = Annotated[str, _checked(_pattern_check(
    _DNS_LABEL, "is not an environment name (lowercase letters, digits and '-')"))]
DnsSubdomain = Annotated[str, _checked(_pattern_check(
    _DNS_SUBDOMAIN, "is not a DNS subdomain name (lowercase letters, digits, '-' and '.')")),
    _text_schema(_DNS_SUBDOMAIN, "DNS subdomain name, as Kubernetes object names are")]


def _int_or_percent(value: int | str) -> str | None:
    if isinstance(value, int):
        return None if value >= 0 else f"must be 0 or more (got {value})"
    if re.match(_INT_OR_PERCENT, value) and int(value[:-1]) <= 100:
        return None
    return f"'{value}' is neither a number of pods nor a percentage such as '25%'"


IntOrPercent = Annotated[int | str, _checked(_int_or_percent), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _INT_OR_PERCENT}],
    "description": "a number of pods, or a percentage of the wanted pods such as '25%'"})]
SCALE_METRICS = ("cpu", "concurrency", "rps", "queue", "kv-cache")
SATURATION_METRICS = ("queue", "kv-cache")
"""An LLM engine's own saturation signals: requests waiting in its queue per pod, and its
KV-cache use per pod (percent)."""
SATURATION_ENGINES = ("vllm",)
"""Engines that export both saturation gauges (their names: `components/runtimes/<engine>.py`,
`metrics`)."""


def _scale_metric(value: str) -> str | None:
    if value == "memory":
        return ("memory is not a scaling signal for a model server: a loaded model holds its "
                "memory whatever the load, so the autoscaler would scale up and never down; "
                "use cpu, concurrency (requests in flight per pod) or rps (requests per "
                "second per pod)")
    if value not in SCALE_METRICS:
        return f"'{value}' is not one of {', '.join(SCALE_METRICS)}"
    return None


ScaleMetric = Annotated[str, _checked(_scale_metric), WithJsonSchema({
    "enum": list(SCALE_METRICS),
    "description": "what the autoscaler follows (KServe's scaleMetric): cpu, concurrency "
                   "(requests in flight per pod), rps (requests per second per pod), and for "
                   "LLM engines queue (requests waiting per pod) or kv-cache (KV-cache use per "
                   "pod, percent)"})]


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


GPU_SURGE = 0
GPU_UNAVAILABLE = 1
DEFAULT_SURGE = "25%"
DEFAULT_UNAVAILABLE = 0


LOAD_TESTER_URL = r"^https?://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.svc(\.cluster\.local)?)?(:[0-9]+)?(/.*)?$"
LoadTesterUrl = Annotated[str, _checked(_pattern_check(
    LOAD_TESTER_URL, "is not the URL of a Service in the cluster, "
    "http://<service>.<namespace>[.svc.cluster.local][:port]/ (e.g. "
    "http://flagger-loadtester.test/)")), WithJsonSchema({
        "type": "string", "pattern": LOAD_TESTER_URL,
        "description": "the flagger-loadtester Service, http://<service>.<namespace>/"})]


class LoadTest(Strict):
    """Traffic that Flagger's load tester sends to the new version during each analysis
    (a `rollout` webhook running `hey`), so that the analysis has values to check."""

    url: LoadTesterUrl
    """The flagger-loadtester Service, `http://<service>.<namespace>/`; its namespace is
    admitted to the model's HTTP port."""
    request: dict[str, Any]
    """An Open Inference Protocol inference request the model accepts (its JSON body)."""
    rps: int = Field(10, ge=1, le=1000)
    """Requests per second it sends."""
    concurrency: int = Field(2, ge=1, le=100)
    """Connections it sends them over."""
    duration_seconds: int | None = Field(None, ge=10, le=3600, alias="durationSeconds")
    """How long each run lasts; default: the analysis interval (one run per analysis)."""

    @property
    def load_tester_namespace(self) -> str:
        host = self.url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        return host.split(".")[1]


class Rollout(Strict):
    """How a new version replaces the pods: a rolling update, or a Flagger canary analysis."""

    strategy: Literal["rolling", "progressive"] = "rolling"
    """`rolling`: a Deployment's RollingUpdate. `progressive`: a Flagger Canary shifts traffic
    to the new version step by step, gated on metrics, and rolls back on failure (stack
    config `flagger` and `gateway`)."""
    steps: list[Annotated[int, Field(ge=1, le=99)]] = [10, 25, 50]
    """Progressive: percent of traffic the new version gets at each step, rising."""
    interval_seconds: int = Field(60, ge=10, le=3600, alias="intervalSeconds")
    """Progressive: seconds between two analyses (and two steps)."""
    failure_budget: int = Field(5, ge=1, le=100, alias="failureBudget")
    """Progressive: failed analyses before the new version is rolled back."""
    min_success_rate: float = Field(99.0, ge=0, le=100, alias="minSuccessRate")
    """Progressive: lowest share of inference requests answered without a 5xx, in percent."""
    max_latency_p99_ms: int = Field(500, ge=1, le=600000, alias="maxLatencyP99Ms")
    """Progressive: highest p99 latency of inference requests, in milliseconds."""
    load_test: LoadTest | None = Field(None, alias="loadTest")
    """Progressive: traffic sent to the new version during the analysis. Without it the
    analysis needs live traffic: with none, Flagger finds no values and rolls back."""

    max_surge: IntOrPercent | None = Field(None, alias="maxSurge")
    """Pods above the wanted count while rolling out (number or percent). Default: 25%, or 0
    for a model with GPUs: a GPU pool rarely has a spare GPU for a surge pod, so the rollout
    would wait forever on a Pending pod."""
    max_unavailable: IntOrPercent | None = Field(None, alias="maxUnavailable")
    """Pods below the wanted count while rolling out. Default: 0, or 1 for a model with GPUs
    (the old pod frees its GPU for the new one)."""

    def budget(self, gpus: int) -> tuple[int | str, int | str]:
        """(maxSurge, maxUnavailable) with the defaults for a pod with `gpus` GPUs filled in."""
        surge = self.max_surge if self.max_surge is not None else (
            GPU_SURGE if gpus else DEFAULT_SURGE)
        unavailable = self.max_unavailable if self.max_unavailable is not None else (
            GPU_UNAVAILABLE if gpus else DEFAULT_UNAVAILABLE)
        return surge, unavailable


class Toleration(Strict):
    """A taint the pods tolerate (Kubernetes `tolerations`); a key is required."""

    key: str | None = None
    """The taint's key, e.g. `nvidia.com/gpu`."""
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class PodSettings(Strict):
    """What the pods of a workload (the server, the workers) run with, and where."""

    resources: Resources = Resources()
    env: EnvVars = {}
    """Extra environment variables."""
    rollout: Rollout = Rollout()
    startup_seconds: int = Field(600, ge=10, le=7200, alias="startupSeconds")
    """Seconds a pod may take to load its model before it counts as failed (startup probe);
    liveness is checked only once it is ready. Default 600, or 1800 with `runtime.engine:
    vllm`."""
    node_selector: dict[str, str] = Field({}, alias="nodeSelector")
    """Node labels the pods need, e.g. `nvidia.com/gpu.product: NVIDIA-A10G`; merged over the
    stack's GPU node selector for models with GPUs."""
    tolerations: list[Toleration] = []
    """Taints the pods tolerate, besides the stack's GPU taint for models with GPUs."""
    priority_class_name: DnsSubdomain | None = Field(None, alias="priorityClassName")
    """A PriorityClass for the pods (which must exist in the cluster)."""

    @property
    def gpus(self) -> int:
        return int(self.resources.gpu)

    def rollout_budget(self) -> tuple[int | str, int | str]:
        return self.rollout.budget(self.gpus)


class Candidate(Strict):
    """Another version beside the stable one: a Deployment `<model>-<name>` of its own that
    gets a share of live traffic (`weight`, A/B/N) or a copy of it (`mirror`, a shadow whose
    answers are discarded), through the model's Gateway API HTTPRoute."""

    name: DnsLabel
    """Names the candidate's Deployment `<model>-<name>`."""
    version: SemVer
    """Its own version: never the model's, nor another candidate's."""
    artifact: Artifact
    image: Image | None = None
    """Default: the model's image settings, built for the candidate's version."""
    weight: int | None = Field(None, ge=1, le=99)
    """Percent of live traffic it answers; the stable version answers the rest."""
    mirror: int | None = Field(None, ge=1, le=100)
    """Percent of live traffic copied to it; its answers are discarded."""


def traffic_split(candidates: Sequence[Candidate]) -> dict[str, int]:
    """Percent of live traffic per candidate name, the stable version under "": it answers
    what the weighted candidates do not (mirrors take a copy, not a share)."""
    weighted = {c.name: c.weight for c in candidates if c.weight is not None}
    return {"": 100 - sum(weighted.values()), **weighted}


LATENCY_OBJECTIVES_MS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
"""The model server's latency histogram bounds (`images/modelserver/metrics.py`), in whole
milliseconds: a latency objective is counted as "answered within its bucket", so it must be
one of them."""


def _latency_objective(value: int) -> str | None:
    if value not in LATENCY_OBJECTIVES_MS:
        return (f"{value} is not a bound of the model server's latency histogram; use one of "
                f"{', '.join(map(str, LATENCY_OBJECTIVES_MS))}")
    return None


LatencyObjective = Annotated[int, _checked(_latency_objective), WithJsonSchema({
    "type": "integer", "enum": list(LATENCY_OBJECTIVES_MS),
    "description": "milliseconds; a bound of the model server's latency histogram"})]


class Slo(Strict):
    """The online model's service-level objectives, over 30 days; its alerts page when the
    error budget burns fast (the Google SRE workbook's multi-window, multi-burn-rate alerts)."""

    error_ratio_percent: float = Field(1.0, gt=0, lt=100, alias="errorRatioPercent")
    """Most inference requests answered with a server error (5xx), in percent; 4xx are the
    clients' mistakes and do not count."""
    p99_latency_ms: LatencyObjective = Field(500, alias="p99LatencyMs")
    """99% of inference requests are answered within this many milliseconds."""


class QueueSlo(Strict):
    """When a batch model's queue needs a person."""

    oldest_message_seconds: int = Field(3600, ge=60, alias="oldestMessageSeconds")
    """Alert when the oldest waiting message is older than this (CloudWatch
    ApproximateAgeOfOldestMessage)."""
    dead_letter_messages: int = Field(0, ge=0, alias="deadLetterMessages")
    """Alert when the dead-letter queue holds more messages than this."""


class Serving(PodSettings):
    port: int = Field(8080, ge=1024, le=65535)
    """Port the model server listens on; 1024 or above, since pods run as non-root."""
    replicas: Replicas = Replicas()
    target_cpu_utilization: int = Field(70, ge=1, le=100, alias="targetCPUUtilization")
    """Average CPU use, in percent of the request, that the autoscaler aims for."""
    scale_metric: ScaleMetric = Field("cpu", alias="scaleMetric")
    """What the autoscaler follows; concurrency and rps are read from the model server's own
    Prometheus metrics, queue and kv-cache from an LLM engine's, through a KEDA ScaledObject
    (stack config `prometheusAddress`)."""
    scale_target: int | None = Field(None, ge=1, alias="scaleTarget")
    """Target per pod (KServe's scaleTarget): requests in flight for concurrency, requests per
    second for rps, requests waiting for queue, percent of the KV cache for kv-cache (1-100)
    (all required), percent CPU for cpu (default: targetCPUUtilization)."""
    grpc_port: int = Field(8081, ge=1024, le=65535, alias="grpcPort")
    """Port of the Open Inference Protocol's gRPC endpoint; probes stay on HTTP."""
    candidates: list[Candidate] = []
    """Versions beside the stable one, with a traffic weight or a mirror share each."""
    adapters: list[Adapter] = []
    """LoRA adapters served beside the base model under their own names (`runtime.engine:
    vllm`): each pinned file by file, fetched and verified before the engine starts."""
    slo: Slo = Slo()
    """Objectives its alerts (a PrometheusRule) and dashboard are held to."""


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


class Batch(PodSettings):
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
    runs: list[BatchRun] = []
    """Partitioned runs; adding one starts it, the others are left alone."""
    slo: QueueSlo = QueueSlo()
    """Queue thresholds its alerts fire at."""


class ArtifactFile(Strict):
    """One object of a pinned S3 prefix (an LLM's weights, an adapter): fetched and verified."""

    path: ObjectPath
    """The object's key below the artifact's `uri` prefix (`config.json`,
    `model-00001-of-00002.safetensors`): never absolute, never `..`."""
    sha256: Sha256
    """The object's SHA-256, checked before the engine starts."""
    size: int = Field(ge=0)
    """The object's size in bytes."""
    version_id: VersionId | None = Field(None, alias="versionId")
    """Pins the exact S3 object version of this file."""


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
    files: list[ArtifactFile] = []
    """Every object of a `uri` prefix with its sha256 and size (`python -m modelfleet
    artifact lock` fills it): exactly those objects are fetched and verified."""


class Adapter(Strict):
    """A LoRA adapter of an LLM: served under `name`, pinned file by file like the weights."""

    name: DnsLabel
    """The model name clients ask for (OpenAI API `model`), and its folder
    `/models/adapters/<name>`."""
    version: SemVer
    """The adapter's own version; a new one is a bump that rolls the pods."""
    artifact: Artifact
    """An S3 prefix (`uri` ending in `/`) and every file below it (`files`)."""


class Build(Strict):
    context: RelativePath
    """Folder sent to the build, relative to the manifest."""
    dockerfile: RelativePath | None = None
    """Dockerfile, relative to the manifest; default: `Dockerfile` in the context. The model
    server's images (context `images`), by the artifact's format: `images/sklearn.Dockerfile`
    (scikit-learn joblib files), `images/torch.Dockerfile` (torch.export `.pt2` programs),
    `images/trees.Dockerfile` (XGBoost JSON/UBJSON and LightGBM text models),
    `images/onnx.Dockerfile` (ONNX on onnxruntime; build arg
    `REQUIREMENTS: requirements-onnx-gpu.txt` for the CUDA provider); each also serves MLflow
    model folders of its flavours (sklearn, pytorch, xgboost and lightgbm, onnx)."""
    args: BuildArgs = {}
    """Docker build arguments; MODEL_NAME and MODEL_VERSION are always passed."""


class Image(Strict):
    build: Build | None = None
    """Build the image from a Dockerfile and push it to the model's repository."""
    ref: ImageRef | None = None
    """Deploy a prebuilt image, pinned by digest."""


Stage = Literal["candidate", "approved"]
ENGINES = ("modelserver", "vllm", "custom")
Engine = Literal["modelserver", "vllm", "custom"]
HttpPath = Annotated[str, _checked(_pattern_check(
    _HTTP_PATH, "is not an absolute HTTP path (e.g. /v2/health/ready)")),
    _text_schema(_HTTP_PATH, "absolute HTTP path, e.g. /v2/health/ready")]
VLLM_PORT = 8000
"""vLLM's OpenAI server's default `--port` (vllm@v0.11.0: vllm/entrypoints/openai/cli_args.py,
`port: int = 8000`)."""
LLM_STARTUP_SECONDS = 1800
"""Startup budget of an engine that loads an LLM's weights (and compiles its kernels) when
`startupSeconds` is not given: half an hour, as issue 19 asks."""


class Health(Strict):
    """Where a `custom` runtime answers its probes (HTTP GET, 200 when healthy)."""

    live: HttpPath
    """Liveness path, e.g. `/v2/health/live` (Open Inference Protocol)."""
    ready: HttpPath
    """Readiness path, e.g. `/v2/health/ready`; also the startup probe's."""


class Runtime(Strict):
    """Which server runs the model, as KServe's `ServingRuntime` says how a server runs."""

    engine: Engine = "modelserver"
    """`modelserver`: this project's server (Open Inference Protocol). `vllm`: vLLM's OpenAI
    server for large language models, weights fetched and verified before it starts.
    `custom`: any image serving HTTP (Triton, MLServer, ...)."""
    args: list[str] = []
    """Extra arguments for the engine's command line (vLLM: `--max-model-len=8192`); those
    modelfleet sets itself are refused."""
    port: int | None = Field(None, ge=1024, le=65535)
    """The engine's HTTP port (`vllm`: default 8000; `custom`: required); 1024 or above, since
    pods run as non-root. `modelserver` takes `serving.port`."""
    protocol: Literal["oip", "openai"] | None = None
    """`custom` only: what the image speaks, the Open Inference Protocol (Triton, MLServer)
    or the OpenAI API."""
    health: Health | None = None
    """`custom` only: its liveness and readiness paths."""
    metrics_path: HttpPath | None = Field(None, alias="metricsPath")
    """`custom` only: where Prometheus scrapes its metrics (e.g. `/metrics`); none: not
    scraped."""
    metrics_port: int | None = Field(None, ge=1024, le=65535, alias="metricsPort")
    """`custom` only: the port of `metricsPath`, when not `port` (Triton: 8002)."""
    metrics: Literal["triton", "mlserver", "none"] = "none"
    """`custom` only: which request metrics the image exports at `metricsPath` (Triton's
    `nv_inference_*`, MLServer's `model_infer_*`); with one, the model may scale on
    `concurrency` or `rps` and roll out progressively. `none`: neither."""


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
    runtime: Runtime = Runtime()
    """The server that runs the model (serving and batch alike); default: `modelserver`."""

    @model_validator(mode="after")
    def _engine_defaults(self) -> ModelSpec:
        """The engine's port and startup budget where the manifest leaves them out.

        For `vllm` and `custom`, `serving.port` is the engine's port (`runtime.port`, vLLM's
        8000 by default), so the Service, the route and the canary analysis address it; an
        LLM's startup budget is `LLM_STARTUP_SECONDS` unless `startupSeconds` is given.
        """
        serving = self.serving
        if self.runtime.engine == "modelserver" or not isinstance(serving, Serving):
            return self
        update: dict[str, Any] = {}
        port = self.runtime.port or (VLLM_PORT if self.runtime.engine == "vllm" else None)
        if port is not None and port != serving.port:
            update["port"] = port
        if self.runtime.engine == "vllm" and "startup_seconds" not in serving.model_fields_set:
            update["startup_seconds"] = LLM_STARTUP_SECONDS
        if update:
            object.__setattr__(self, "serving", serving.model_copy(update=update))
        return self

    @property
    def speaks_openai(self) -> bool:
        """Served over the OpenAI API (vLLM, or a custom runtime with `protocol: openai`): an
        LLM, routed by model name to an InferencePool behind the stack's Gateway."""
        return self.runtime.engine == "vllm" or self.runtime.protocol == "openai"

    @property
    def served_names(self) -> list[str]:
        """The names clients ask for in the OpenAI API's `model`: the model's, then each
        LoRA adapter's."""
        adapters = self.serving.adapters if self.serving else []
        return [self.name, *[adapter.name for adapter in adapters]]

    def candidate_spec(self, candidate: Candidate) -> ModelSpec:
        """The model as a candidate runs it: its version, artifact and image (by default the
        model's image settings, built for that version), the model's serving settings."""
        serving = self.serving.model_copy(update={"candidates": []}) if self.serving else None
        return self.model_copy(update={
            "version": candidate.version, "artifact": candidate.artifact,
            "image": candidate.image or self.image, "serving": serving, "batch": None})


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
