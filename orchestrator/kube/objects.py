"""The pieces every object the operator owns shares: names, labels, owner references, pod
security, instance resources, GPU placement and the orchestrator's own step containers. Pure:
plain dicts, no client, no I/O.

A training-job attempt is a ``batch/v1`` Job (``jobs.py``); a variant of an endpoint's fleet is
a Deployment and a Service (``fleets.py``). Every pod runs at the restricted Pod Security
profile; secrets (the object-store credentials and the keyring) are mounted only into the
orchestrator's own step containers, never into the user's container.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.settings import KubeSettings

PREFIX = "orchestrator.dev"
LABEL_TRAINING_JOB = f"{PREFIX}/training-job"
LABEL_ATTEMPT = f"{PREFIX}/attempt"
LABEL_ENDPOINT = f"{PREFIX}/endpoint"
LABEL_VARIANT = f"{PREFIX}/variant"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
ANNOTATION_OUTPUT = f"{PREFIX}/output-uri"
# A Job's metric definitions ([[name, regex], ...]): read from its algo container's log.
ANNOTATION_METRICS = f"{PREFIX}/metric-definitions"
# The Job controller's index of a pod of an Indexed Job (an annotation since Kubernetes 1.21).
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
LABEL_FLEET = f"{PREFIX}/fleet"  # the EndpointConfig of a fleet (as a DNS label)
# Names as the user wrote them (object names and label values are lowercased DNS labels).
ANNOTATION_ENDPOINT_NAME = f"{PREFIX}/endpoint-name"
ANNOTATION_VARIANT_NAME = f"{PREFIX}/variant-name"
ANNOTATION_CONFIG_NAME = f"{PREFIX}/endpoint-config-name"

DOWNLOAD, ALGO, UPLOAD = "download", "algo", "upload"
STEP_DIR = "/etc/orchestrator/step"
KEYRING_DIR = "/etc/orchestrator/keyring"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ML_ROOT = Path("/opt/ml")
# Exit code of a step that found the user's input wrong (a missing channel): fail the Job.
CLIENT_ERROR_EXIT = 2
# Exit code of a step that found its pod not as the Job defines it (a host index out of
# range, peers that never resolve): no retry of the pod will do better.
FATAL_EXIT = 3


def k8s_name(*parts: str, limit: int = 63) -> str:
    """A DNS-1123 label from resource names (lowercased; hashed when it had to change)."""
    raw = "-".join(parts)
    name = re.sub(r"[^a-z0-9-]", "-", raw.lower()).strip("-") or "x"
    if not name[0].isalpha():
        name = f"x{name}"
    if name != raw or len(name) > limit:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
        name = f"{name[: limit - 7].rstrip('-')}-{digest}"
    return name


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def meta(
    name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any] | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**labels, LABEL_MANAGED: "orchestrator"},
    }
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return meta


# --- pods ----------------------------------------------------------------------------------
def pod_security(uid: int) -> dict[str, Any]:
    """The pod half of the restricted Pod Security profile (images built to run as root run
    as ``uid``; ``fsGroup`` makes the shared volume writable)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def instance_resources(instance_type: str) -> dict[str, Any]:
    """Requests and limits of one instance type; GPUs as ``nvidia.com/gpu``."""
    itype = INSTANCE_TYPES[instance_type]
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if itype.vcpus:
        requests["cpu"] = str(itype.vcpus)
    if itype.memory_mib:
        requests["memory"] = limits["memory"] = f"{itype.memory_mib}Mi"
    if itype.gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(itype.gpus)
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def gpu_placement(instance_type: str, s: KubeSettings) -> dict[str, Any]:
    if not INSTANCE_TYPES[instance_type].gpus:
        return {}
    out: dict[str, Any] = {"tolerations": [dict(t) for t in s.gpu_tolerations]}
    if s.gpu_node_selector:
        out["nodeSelector"] = dict(s.gpu_node_selector)
    if s.gpu_runtime_class_name:
        out["runtimeClassName"] = s.gpu_runtime_class_name
    return out


def step_container(name: str, command: str, s: KubeSettings, *extra: str) -> dict[str, Any]:
    """One of our own step containers: the only ones that see the secrets."""
    return {
        "name": name,
        "image": s.training_image,
        "imagePullPolicy": s.image_pull_policy,
        "command": ["python", "-m", "orchestrator.kube.steps", command],
        "args": [
            "--config",
            f"{STEP_DIR}/job.json",
            "--keyring",
            f"{KEYRING_DIR}/keyring.json",
            "--ml-root",
            str(ML_ROOT),
            *extra,
        ],
        "envFrom": [{"secretRef": {"name": s.credentials_secret, "optional": True}}],
        "volumeMounts": [
            {"name": "ml", "mountPath": str(ML_ROOT)},
            {"name": "step", "mountPath": STEP_DIR, "readOnly": True},
            {"name": "keyring", "mountPath": KEYRING_DIR, "readOnly": True},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "securityContext": container_security(),
    }
