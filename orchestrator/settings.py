"""Typed settings, read once from the environment (prefix ``ORCH_``).

Nothing else in the package reads ``os.environ`` for configuration: components receive the
``Settings`` object (or the group they need) from whoever built them. Nested groups use a
double underscore, e.g. ``ORCH_OBJECTS__URL=s3://bucket``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    # The XDG base-directory variables are the one place we look outside ORCH_*.
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def default_home() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "orchestrator"


def default_config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "orchestrator"


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8686, ge=0, le=65535)
    # Lists: default and maximum page size.
    default_page_size: int = Field(default=50, ge=1, le=1000)
    # Processes serving invocations on the server's port (SO_REUSEPORT): the control plane's
    # own and N - 1 router workers. 1 (the default) is measured fastest when the replicas
    # share the machine's cores (docs/benchmarks.md); more helps with cores to spare.
    router_workers: int = Field(default=1, ge=1, le=64)
    # Invocations answered straight from uvicorn's HTTP protocol (orchestrator.dataplane.
    # fastpath) rather than through an ASGI cycle; false: the plain ASGI front.
    invocation_fast_path: bool = True
    # HTTPS: a PEM certificate (chain) and its unencrypted key (``orch tls self-signed HOST``
    # makes a pair); the same socket then serves the API and invocations over TLS only.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Plain HTTP on an address other than loopback is refused unless this is set (say, behind
    # a proxy or an Ingress that terminates TLS); --insecure-http-on-network.
    allow_insecure_http: bool = False


class ObjectStoreSettings(BaseModel):
    # ``file://`` (default: ``<home>/objects``) or ``s3://`` (any S3-compatible service).
    url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    default_bucket: str = "orchestrator"
    chunk_size: int = Field(default=4 << 20, ge=64 << 10, le=64 << 20)
    # What wraps each object's data key (objects/providers.py): the local keyring (default),
    # AWS KMS (boto3's credentials; kms_endpoint_url for a KMS-compatible service) or a Vault
    # / OpenBao Transit engine (vault_addr, a token file, the engine's mount).
    key_provider: Literal["local", "aws-kms", "vault"] = "local"
    # The key for objects whose resource names no KmsKeyId: a KMS key id, alias or ARN, a
    # Transit key name, or a named local key (unset: the local keyring's default key;
    # required with aws-kms and vault).
    kms_key_id: str | None = None
    kms_region: str | None = None  # AWS KMS's region (unset: ORCH_REGION)
    kms_endpoint_url: str | None = None
    vault_addr: str = "http://127.0.0.1:8200"
    vault_token_file: Path | None = None  # unset: VAULT_TOKEN or ~/.vault-token
    vault_mount: str = "transit"
    vault_namespace: str | None = None
    # The background master key re-wrap: objects per second at most (ORCH_OBJECTS__REWRAP_RATE).
    rewrap_rate: float = Field(default=1000.0, gt=0)


class ControllerSettings(BaseModel):
    # Level-triggered resync period; creates and stops wake the loop at once.
    resync_seconds: float = Field(default=1.0, gt=0)
    # SIGTERM, then SIGKILL after this grace (SageMaker gives training 120 s).
    stop_grace_seconds: float = Field(default=30.0, ge=0)
    # A retried attempt waits base x 2^n (n: retries so far), at most 6 minutes, as a
    # Kubernetes Job backs off; tests set a small base.
    retry_backoff_seconds: float = Field(default=10.0, ge=0)
    # An endpoint replica must answer GET /ping within this after it starts.
    replica_startup_timeout_seconds: float = Field(default=120.0, gt=0)
    # A replica that dies this many times in a row while starting fails the endpoint.
    replica_max_start_failures: int = Field(default=3, ge=1)
    # Training jobs with a CheckpointConfig: how often the checkpoint directory is scanned;
    # a file unchanged for one scan is uploaded (process and Docker backends).
    checkpoint_sync_seconds: float = Field(default=5.0, gt=0, le=3600)
    # How fast a checkpoint is read for upload while the user's code runs (MiB/s; unset: no
    # limit; the niced uploader is what keeps training's slowdown small on a shared core,
    # docs/benchmarks.md): a bound where niceness does not reach (a container's cgroup).
    checkpoint_upload_mib_per_second: float | None = Field(default=None, gt=0)
    # A running training job's CPU, memory, disk and GPU use is sampled per host this often
    # (SageMaker's CloudWatch metrics are per minute; 0 turns sampling off).
    usage_interval_seconds: float = Field(default=5.0, ge=0, le=3600)
    # Job slots: training jobs running at once (0 = unlimited); more wait in the queue as
    # Pending, ordered by Priority then submission (controller/plan/admission.py).
    max_concurrent_training_jobs: int = Field(default=5, ge=0)
    # Jobs waiting in the queue at most; a create beyond answers ResourceLimitExceeded.
    max_queued_training_jobs: int = Field(default=10_000, ge=1)
    # The host's vCPUs and memory that training jobs share (an instance type's size is what
    # a job takes); None: the machine's (process and Docker backends; on Kubernetes the
    # scheduler places CPU and memory).
    training_vcpus: int | None = Field(default=None, ge=1)
    training_memory_mib: int | None = Field(default=None, ge=1)
    # The autoscaler reads each variant's traffic over this window (SageMaker's
    # high-resolution metrics are 10 s).
    autoscaling_window_seconds: float = Field(default=10.0, gt=0)
    # Copies of live requests in flight to shadow variants at most; more are dropped (and
    # counted), so a slow shadow never holds memory or sockets the live path needs.
    shadow_max_in_flight: int = Field(default=64, ge=1)


class ServingSettings(BaseModel):
    """One inference replica (``ORCH_SERVING__*``); a model's container may override any of
    these for its own replicas with the same names in its Environment (see ``overridden``)."""

    max_payload_bytes: int = Field(default=6 * 1024 * 1024, ge=1)
    # Per request, time queued included: past it the client gets 504 and the work is dropped.
    invocation_timeout_seconds: float = Field(default=60.0, gt=0)
    # Model calls at once (worker threads); more requests wait in the queue.
    max_concurrency: int = Field(default=1, ge=1, le=256)
    # Requests waiting for a worker; one more is answered 429 with Retry-After at once.
    max_queue: int = Field(default=128, ge=0, le=100_000)
    retry_after_seconds: float = Field(default=1.0, gt=0)
    # A model whose last 100 calls each took under this (milliseconds) runs on the event loop
    # instead of a worker thread (one worker, no batching): about +20% requests/s for fast
    # models. One slower call sends it back to the thread. While a call runs inline the
    # replica cannot answer its own 504 or /ping; the router's deadline still answers 504 and a
    # replica whose /ping stops answering leaves the routing table. 0 turns it off.
    inline_below_ms: float = Field(default=2.0, ge=0, le=1000)
    # Replicas serve HTTPS with a certificate from the control plane's replica CA
    # (``<config_dir>/tls/replica-ca.*``) and the data plane verifies it against that CA only.
    replica_tls: bool = False
    # The replica CA certificate the data plane verifies replicas against, when it is not the
    # control plane's own (on a cluster: the mounted ``tls.crt`` of the replica CA Secret).
    replica_ca_file: Path | None = None
    # One line per model request on the replica's output (its log stream): time, path,
    # status, latency. Off by default; ``ORCH_SERVING__REQUEST_LOG=true`` in a Model's
    # Environment turns it on for that model's replicas.
    request_log: bool = False

    def overridden(self, environment: Mapping[str, str]) -> ServingSettings:
        """These settings with ``ORCH_SERVING__<FIELD>`` entries of a container's Environment
        applied; a bad value raises ``ValueError`` naming the variable and the fix."""
        updates: dict[str, object] = {}
        for name in type(self).model_fields:
            key = f"ORCH_SERVING__{name.upper()}"
            if key in environment:
                updates[name] = environment[key]
        if not updates:
            return self
        try:
            return type(self).model_validate({**self.model_dump(), **updates})
        except ValidationError as e:
            problems = "; ".join(
                f"ORCH_SERVING__{str(err['loc'][0]).upper()}: {err['msg']}" for err in e.errors()
            )
            raise ValueError(f"Environment: {problems}") from e


class TransformSettings(BaseModel):
    """Batch transform jobs (``ORCH_TRANSFORM__*``)."""

    # A Line-split, uncompressed input is cut into ranges of about this size (at line
    # boundaries), so that instances share a large file and a restart loses at most a range.
    range_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)
    # An instance whose runner died without a result is relaunched this many times.
    max_instance_restarts: int = Field(default=3, ge=0, le=100)
    # How often a runner rewrites its progress record.
    progress_interval_seconds: float = Field(default=2.0, gt=0, le=600)
    # How long an instance waits for its model server's GET /ping, and for instance 0's plan.
    startup_timeout_seconds: float = Field(default=300.0, gt=0)


class DockerSettings(BaseModel):
    """The Docker backend (``ORCH_DOCKER__*``): the images jobs and replicas run in."""

    training_image: str = "orchestrator/training:0.1.0"
    algorithms_image: str = "orchestrator/algorithms:0.1.0"
    serving_image: str = "orchestrator/serving:0.1.0"
    # Containers never run as root: this user, and the job's scratch is made writable for it.
    user: str = "1000:1000"
    # Where published replica ports listen on the host.
    publish_host: str = "127.0.0.1"


class LabelSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    match_labels: dict[str, str] = Field(default_factory=dict, alias="matchLabels")


class IPBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    cidr: str
    except_: list[str] = Field(default_factory=list, alias="except")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, v: str) -> str:
        ipaddress.ip_network(v, strict=False)  # ValueError names the bad address
        return v

    @field_validator("except_")
    @classmethod
    def _excepts(cls, v: list[str]) -> list[str]:
        for cidr in v:
            ipaddress.ip_network(cidr, strict=False)
        return v


class EgressPeer(BaseModel):
    """A NetworkPolicy peer, with Kubernetes' field names: ``ipBlock``, or a
    ``namespaceSelector`` and/or ``podSelector`` (``matchLabels`` only)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    ip_block: IPBlock | None = Field(default=None, alias="ipBlock")
    namespace_selector: LabelSelector | None = Field(default=None, alias="namespaceSelector")
    pod_selector: LabelSelector | None = Field(default=None, alias="podSelector")

    @model_validator(mode="after")
    def _one_kind(self) -> EgressPeer:
        selectors = self.namespace_selector is not None or self.pod_selector is not None
        if (self.ip_block is not None) == selectors:
            raise ValueError("give either ipBlock or namespaceSelector/podSelector")
        return self


class EgressPort(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    port: int = Field(ge=1, le=65535)
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"
    end_port: int | None = Field(default=None, ge=1, le=65535, alias="endPort")


class EgressRule(BaseModel):
    """One egress rule of a NetworkPolicy (Kubernetes' shape: ``to``, ``ports``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    to: list[EgressPeer] = Field(min_length=1)
    ports: list[EgressPort] = Field(default_factory=list)

    def manifest(self) -> dict[str, Any]:
        """As a NetworkPolicy's ``spec.egress[]`` item."""
        rule: dict[str, Any] = {"to": [_peer(p) for p in self.to]}
        if self.ports:
            rule["ports"] = [
                {"protocol": p.protocol, "port": p.port}
                | ({"endPort": p.end_port} if p.end_port else {})
                for p in self.ports
            ]
        return rule


def _peer(peer: EgressPeer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.ip_block is not None:
        block: dict[str, Any] = {"cidr": peer.ip_block.cidr}
        if peer.ip_block.except_:
            block["except"] = list(peer.ip_block.except_)
        out["ipBlock"] = block
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = {"matchLabels": dict(peer.namespace_selector.match_labels)}
    if peer.pod_selector is not None:
        out["podSelector"] = {"matchLabels": dict(peer.pod_selector.match_labels)}
    return out


class KubeSettings(BaseModel):
    """The operator on Kubernetes (``ORCH_KUBE__*``): images, placement, secrets, and the
    object store the pods use (defaults to ``ORCH_OBJECTS__*``)."""

    namespace: str = "default"
    training_image: str = "orchestrator/training:0.1.0"
    # Built-in algorithms (AlgorithmName, no image): the training image plus TensorFlow.
    algorithms_image: str = "orchestrator/algorithms:0.1.0"
    serving_image: str = "orchestrator/serving:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    # Training pods: the upload step reads its own pod's status, so this account may get pods.
    training_service_account: str = "orchestrator-training"
    gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    gpu_tolerations: list[dict[str, str]] = Field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    )
    # A RuntimeClass for GPU pods (e.g. "nvidia"), when the cluster needs one.
    gpu_runtime_class_name: str | None = None
    run_as_user: int = 1000
    termination_grace_seconds: int = 120
    object_store_url: str = "s3://orchestrator"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    chunk_size: int = 4 << 20
    credentials_secret: str = "orchestrator-object-store"  # noqa: S105 - a name; AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY
    keyring_secret: str = "orchestrator-keyring"  # noqa: S105 - a name; key keyring.json
    serving_port: int = 8080
    cluster_domain: str = "cluster.local"
    # With ORCH_SERVING__REPLICA_TLS: the Secret (kubernetes.io/tls) holding the replica CA
    # that signs each fleet's serving certificate; the operator makes it once when absent.
    replica_ca_secret: str = "orchestrator-replica-ca"  # noqa: S105 - a name
    # Who sizes each fleet's Deployment: the planner's autoscaler (the one every backend
    # runs: scale to zero, no metrics adapter needed) or an HPA per Deployment (needs a
    # custom-metrics adapter for the invocation metrics; cannot scale to zero).
    autoscaler: Literal["planner", "hpa"] = "planner"
    # The API pods, whose routers measure endpoint traffic: the operator reads it from them
    # (label selector, port) for the autoscaler and the blue/green alarms.
    api_selector: str = "app.kubernetes.io/component=api"
    api_port: int = 8686
    # Training jobs with EnableNetworkIsolation run under a NetworkPolicy that denies all
    # ingress and egress of their pods except DNS, the job's own hosts, and these rules: what
    # the orchestrator's own steps in the pod need (the object store; the Kubernetes API for
    # the upload step). None (unset): such jobs are refused on this backend.
    # JSON, e.g. '[{"to":[{"ipBlock":{"cidr":"10.0.0.10/32"}}],"ports":[{"port":9000}]}]'.
    network_isolation_egress: list[EgressRule] | None = Field(default=None, min_length=1)
    # The cluster's DNS pods (in any namespace), the one DNS server isolated pods may ask.
    network_isolation_dns_labels: dict[str, str] = Field(
        default_factory=lambda: {"k8s-app": "kube-dns"}
    )
    # How long each host of a multi-host job waits for every other host's DNS name to
    # resolve (all its pods scheduled and given an address) before the job fails.
    peer_wait_seconds: int = Field(default=600, ge=1)
    # Training jobs with a CheckpointConfig: how often the upload container scans the
    # checkpoint directory while the user's container runs.
    checkpoint_sync_seconds: float = Field(default=5.0, gt=0, le=3600)
    # How fast a checkpoint is read for upload while the user's code runs (MiB/s; unset: no
    # limit; the niced uploader is what keeps training's slowdown small on a shared core,
    # docs/benchmarks.md): a bound where niceness does not reach (a container's cgroup).
    checkpoint_upload_mib_per_second: float | None = Field(default=None, gt=0)
    # Each training pod samples its container's CPU, memory, disk and GPU use this often
    # (``kube/hostenv.py``, marked lines in the pod's log); 0: not sampled.
    usage_interval_seconds: float = Field(default=5.0, ge=0, le=3600)
    # ``orch operator`` serves the controller's Prometheus metrics (passes, the training queue,
    # reconcile errors, object-store errors: docs/dashboards.md) at /metrics on this port;
    # unset: not served (the chart sets it).
    metrics_port: int | None = Field(default=None, ge=1, le=65535)


class RateLimitSettings(BaseModel):
    # Per API key (or SigV4 access key): requests a second and the burst allowed above it.
    # The management API and the AWS protocols (``orchestrator.ratelimit``); 0: no limit.
    api_requests_per_second: float = Field(default=50.0, ge=0)
    api_burst: int = Field(default=100, ge=1)
    # Invocations, per key, in each serving process; 0 (the default): no limit.
    invocations_per_second: float = Field(default=0.0, ge=0)
    invocation_burst: int = Field(default=1000, ge=1)


class AuditSettings(BaseModel):
    # Record every management API and AWS call and every refused invocation (the audit trail).
    enabled: bool = True
    # The bucket the trail is kept in; users cannot write to it through the object routes.
    bucket: str = "orchestrator-audit"
    # Record files are written every ``flush_seconds`` or ``batch_records`` calls.
    flush_seconds: float = Field(default=5.0, gt=0, le=3600)
    batch_records: int = Field(default=1000, ge=1, le=1_000_000)
    # A signed digest of the record files is written this often.
    digest_seconds: float = Field(default=3600.0, gt=0, le=86400)
    # The Ed25519 signing key (PEM); default ``<config_dir>/audit-signing.key``, made when
    # absent. On a cluster, point it at a mounted Secret.
    signing_key_file: Path | None = None
    # This process's chain: each writer keeps its own (on a cluster, each API pod: the
    # chart sets the pod's name).
    writer: str = Field(default="main", pattern=r"^[A-Za-z0-9._-]{1,128}$")


class MetricsSettings(BaseModel):
    # Endpoint metrics kept in the SQL store (the desired state's database; on a cluster only
    # when ORCH_DATABASE_URL names a PostgreSQL one), flushed from memory this often: a kill
    # loses at most this much. Off: memory only, 3 hours, lost on restart.
    durable: bool = True
    flush_seconds: float = Field(default=10.0, gt=0, le=3600)
    # How long each resolution is kept, as CloudWatch: 1-second points 3 hours, 1-minute 15
    # days, 5-minute 63 days, 1-hour 455 days.
    retention_1s_hours: float = Field(default=3.0, gt=0, le=24 * 15)
    retention_1m_days: float = Field(default=15.0, gt=0, le=455)
    retention_5m_days: float = Field(default=63.0, gt=0, le=455)
    retention_1h_days: float = Field(default=455.0, gt=0, le=3650)
    # This process's rows (default the host name: on a cluster, the pod's).
    writer: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")


class AlarmSettings(BaseModel):
    # Metric alarms (orchestrator.api.alarms): evaluated by a service of the control plane
    # this often (and at least six times per the smallest alarm Period).
    enabled: bool = True
    evaluation_seconds: float = Field(default=10.0, gt=0, le=3600)
    # The HMAC-SHA256 key webhook bodies are signed with (X-Orchestrator-Signature); a
    # webhook action is refused at PutMetricAlarm while it is unset.
    webhook_secret: SecretStr | None = None
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_attempts: int = Field(default=4, ge=1, le=10)
    # The first retry waits this long, each next one twice as long.
    webhook_backoff_seconds: float = Field(default=1.0, ge=0, le=300)
    # TEST ONLY: let webhooks reach loopback/private addresses and plain http:// (never in
    # production: it lets a caller make the control plane reach its own network).
    allow_private_webhooks: bool = False


class ConsoleSettings(BaseModel):
    """The web console at ``/console`` (``ORCH_CONSOLE__*``, ``orchestrator.console``)."""

    enabled: bool = True
    # How long a login lasts (the session cookie's lifetime); a logout ends it before.
    session_seconds: float = Field(default=8 * 3600, ge=1, le=30 * 86400)
    # The key sessions are sealed with (default: ``<config_dir>/console-secret``, made on
    # first use). API replicas behind one address must share it: a mounted Secret.
    secret_file: Path | None = None


class Settings(BaseSettings):
    """Every knob of the product. Build once (``get_settings()``) and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="ORCH_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=default_home)
    config_dir: Path = Field(default_factory=default_config_dir)
    database_url: str | None = None
    # Where the desired state lives: the SQL store (a laptop, one host: the server reconciles
    # it with ``backend``), or the namespace's custom resources (a cluster: the API is a
    # stateless front of the Kubernetes API and ``orch operator`` reconciles).
    desired_state: Literal["sql", "kubernetes"] = "sql"
    backend: Literal["process", "docker", "fake"] = "process"
    # API keys from a file instead of the SQL store (a mounted Secret on a cluster).
    api_keys_file: Path | None = None
    # Usage and cost: a YAML/JSON price table (USD per instance-hour, spot discount); unset:
    # the defaults, shaped like SageMaker's on-demand prices (docs/usage.md).
    usage_price_file: Path | None = None
    # How often invocation counts are made durable (a crash loses at most this much of them).
    usage_flush_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Client side: where the control plane is and the key to use.
    endpoint_url: str = "http://127.0.0.1:8686"
    api_key: SecretStr | None = None
    # Client side: the CA certificates (PEM) to verify the control plane's certificate with,
    # instead of the system's (for a self-signed server: its certificate).
    ca_bundle: Path | None = None
    # ``file://`` channel URIs read host paths directly; turn off on shared servers.
    allow_file_uris: bool = True
    # The GPU device indexes jobs may be given (default: every device NVML reports); set it to
    # keep some GPUs out of the orchestrator's hands.
    gpu_devices: list[int] | None = None
    # The region and account in ARNs, and the region SigV4 requests must be signed for.
    region: str = "us-east-1"
    account_id: str = "000000000000"

    server: ServerSettings = Field(default_factory=ServerSettings)
    objects: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    controller: ControllerSettings = Field(default_factory=ControllerSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    kube: KubeSettings = Field(default_factory=KubeSettings)
    docker: DockerSettings = Field(default_factory=DockerSettings)
    transform: TransformSettings = Field(default_factory=TransformSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    alarms: AlarmSettings = Field(default_factory=AlarmSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'state.db'}"

    @property
    def resolved_object_store_url(self) -> str:
        return self.objects.url or (self.home / "objects").as_uri()

    @property
    def keyring_path(self) -> Path:
        return self.home / "keys" / "keyring.json"

    @property
    def credentials_path(self) -> Path:
        return self.config_dir / "credentials.json"

    @property
    def work_dir(self) -> Path:
        """Per-resource roots (the ``/opt/ml`` of each job and replica)."""
        return self.home / "work"

    @property
    def audit_signing_key_path(self) -> Path:
        return self.audit.signing_key_file or self.config_dir / "audit-signing.key"

    @property
    def console_secret_path(self) -> Path:
        return self.console.secret_file or self.config_dir / "console-secret"

    @property
    def replica_ca_dir(self) -> Path:
        """Where the replica CA (``replica-ca.crt``/``.key``) is kept."""
        return self.config_dir / "tls"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
