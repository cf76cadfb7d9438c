"""``python -m orchestrator.api.aws.compat``: writes docs/sagemaker-compat.md, what the AWS
front door serves, what it does not, and where it differs from SageMaker.

Generated from the operation tables: SageMaker's ``TABLE`` with its notes, each other service
module's ``SUPPORTED`` (operation -> note) and ``NOT_SUPPORTED`` where the module exists
(``logs``, ``cloudwatch``, ``s3``, ``sts``), the SDK's default fields ``sagemaker_wire`` accepts,
and the SageMaker operations botocore's model has that the table does not serve (read from
botocore's data files when botocore is installed, without importing it; otherwise a list of
the most used ones written here). A test fails when the committed page is not what this
writes.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

from orchestrator.api.aws.sagemaker import TABLE
from orchestrator.api.aws.sagemaker_wire import DEFAULTS

PAGE = Path("docs/sagemaker-compat.md")
# The other services' modules, with the signing name and protocol their clients speak.
SERVICES = (
    ("s3", "S3", "s3", "REST-XML"),
    ("logs", "CloudWatch Logs", "logs", "awsJson1_1"),
    ("cloudwatch", "CloudWatch", "monitoring", "awsJson1_0"),
    ("sts", "STS", "sts", "query"),
)
# Which family each SageMaker operation belongs to: the first pattern its name matches.
GROUPS: tuple[tuple[str, str], ...] = (
    ("Training", r"TrainingJob|TrainingPlan|TrainingSession|ReservedCapacity|UltraServer"),
    ("Hyperparameter tuning", r"HyperParameterTuning"),
    ("Batch transform", r"TransformJob"),
    ("Processing", r"ProcessingJob"),
    ("Endpoints and inference", r"Endpoint|InferenceComponent|Inference|ScalingConfiguration"),
    ("Model registry, cards and monitoring",
     r"ModelPackage|ModelCard|Model(Bias|Quality|Explainability)|Monitoring|DataQuality"),
    ("Models", r"Model"),
    ("Pipelines", r"Pipeline"),
    ("AutoML", r"AutoML"),
    ("Notebooks", r"NotebookInstance|CodeRepositor"),
    ("Studio, domains and spaces", r"Domain|UserProfile|App|Space|Studio|Image|Partner"),
    ("Experiments and lineage",
     r"Experiment|Trial|Lineage|Action|Artifact|Context|Association|Mlflow"),
    ("Feature Store", r"FeatureGroup|FeatureMetadata"),
    ("Labeling and human review",
     r"LabelingJob|Workteam|Workforce|HumanTask|FlowDefinition|UiTemplate"),
    ("Compilation, optimization and edge", r"CompilationJob|Optimization|Edge|Device"),
    ("HyperPod clusters and quotas", r"Cluster|ComputeQuota"),
    ("Other", r"."),
)  # fmt: skip
# Without botocore, the missing operations SageMaker users reach for most.
MOST_USED_MISSING = (
    "CreateProcessingJob", "DescribeProcessingJob", "ListProcessingJobs",
    "UpdateTrainingJob", "CreateModelPackage", "CreateModelPackageGroup",
    "CreateCompilationJob", "CreatePipeline", "StartPipelineExecution", "CreateNotebookInstance",
    "CreateInferenceComponent", "CreateExperiment",
    "CreateFeatureGroup", "CreateAutoMLJobV2", "CreateDomain", "CreateLabelingJob",
)  # fmt: skip

DIFFERENCES = """\
- **Creates are not idempotent on the wire.** As on SageMaker, a create with a name in use is
  refused whatever its spec: `ResourceInUse` for a training or transform job, a
  `ValidationException` "Cannot create already existing model/endpoint configuration/endpoint"
  for the others (the SDK's `create_model` reads that as "use the existing one"). The REST API
  answers the same spec again with 200 and a different one with 409.
- **A missing resource** is a `ValidationException` in SageMaker's words ("Requested resource
  not found." for a training job, "Could not find requested job with name <name>" for a
  transform job, `Could not find endpoint "<arn>".` for the others), which botocore's waiters
  and the SDK match on.
- **One region and account per server** (`ORCH_REGION`, default `us-east-1`;
  `ORCH_ACCOUNT_ID`, default `000000000000`): they are in every ARN, and a request signed for
  another region is refused. As SageMaker's, ARNs have the name lower-cased; a tag call finds
  a resource whose name has capitals by its ARN all the same.
- **Instance types** are a catalogue of `ml.*` names that set a job's or replica's CPU-time,
  memory and GPU limits (on Kubernetes, its requests), not a machine to rent; an `ml.*` name
  outside the catalogue is refused. The project's own `local` and `local_gpu` (no limits) are
  left out of responses, which SageMaker's enums would not allow.
- **Images.** SageMaker's built-in linear-learner image (its registry account in any region,
  tags `1` and `latest`), or the alias `linear-learner` (and `mlp`, which SageMaker has not),
  as a `TrainingImage` runs the project's built-in algorithm: its hyperparameters are the
  built-in's (see docs/algorithms.md; SageMaker's `feature_dim`, for one, is refused by name).
  SageMaker's scikit-learn images run the job in script mode on the project's training image,
  with the scikit-learn installed there whatever the image's version tag; as a model's `Image`,
  both are served by the serving image. Any other image runs as given on Docker and
  Kubernetes and is refused, by name, on the process backend.
- **Lists** page 10 at a time unless `MaxResults` says otherwise, and take `NameContains`
  (without regard to case), `StatusEquals`, the creation and last-modified time filters,
  `SortBy` and `SortOrder`; `ListTrainingJobs` is in ascending order by default, as botocore's
  documentation of it says, the others descending. A parameter the server cannot honour
  (`WarmPoolStatusEquals`, `TrainingPlanArnEquals`) is refused by name, never ignored.
- **Responses carry SageMaker's members only.** The project's own (status conditions,
  attempts, routes, `AuthMode`, autoscaling state, a transform job's `Progress` and
  `Instances`, ...) are in the REST API and on the custom resources. `DescribeTrainingJob`
  names where the model will be from the start, and a job shorter than a second counts one.
- **UpdateEndpointWeightsAndCapacities** keeps what it was asked in the Endpoint's spec
  (`VariantOverrides`, on a cluster `spec.variantOverrides`), merged with earlier requests; the
  EndpointConfig is unchanged and the overrides lapse when `UpdateEndpoint` moves to another
  config. An autoscaled variant's `DesiredInstanceCount` must lie within its
  `ManagedInstanceScaling` bounds; the autoscaler goes on from it. `ServerlessUpdateConfig`
  is refused by name (there are no serverless variants).
- **UpdateEndpoint** is always blue/green (all at once, canary or linear); its
  `AutoRollbackConfiguration` alarms are, as SageMaker's, metric alarms by `AlarmName`
  (`PutMetricAlarm`, `orch alarms`: the update rolls back while one is in ALARM; a name with no
  such alarm is refused), or, an extension, carry their own `MetricName` and `Threshold` over
  the new fleet's traffic.
  `RetainAllVariantProperties: true` and `ExcludeRetainedVariantProperties` are refused.
- **Deleting an EndpointConfig an endpoint serves** fails that endpoint at its next pass, where
  SageMaker keeps it serving.
- **Tags** are kept on training jobs, transform jobs, models, endpoint configs and endpoints,
  50 at most;
  keys starting with `aws:` are reserved. `ListTags` answers on one page.
- **`RoleArn` and `ExecutionRoleArn`** are kept and shown, not assumed: jobs and replicas
  reach the object store with the server's own credentials, and what a caller may do is its
  access key's role.
- **Fields a backend cannot carry out** (spot training, KMS keys, shuffling, VPCs, ...) are
  refused with the field named and what to use instead, before anything is stored: the table
  is in docs/conformance.md.
"""


def _module(name: str) -> object | None:
    full = f"orchestrator.api.aws.{name}"
    return importlib.import_module(full) if importlib.util.find_spec(full) else None


def botocore_operations() -> list[str] | None:
    """SageMaker's operations in the installed botocore's model, read from its data files (the
    server never imports botocore); None without botocore."""
    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "sagemaker"
    versions = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not versions:
        return None
    path = versions[-1] / "service-2.json.gz"
    doc = json.loads(gzip.decompress(path.read_bytes()))
    return sorted(doc["operations"])


def _group(operation: str) -> str:
    return next(name for name, pattern in GROUPS if re.search(pattern, operation))


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| operation | notes |", "|---|---|", *(f"| `{n}` | {note} |" for n, note in rows), ""]


def render(model_operations: list[str] | None) -> str:
    served = [row.name for row in TABLE]
    out = [
        "# SageMaker compatibility",
        "",
        "What the AWS front door serves (boto3 and the SageMaker Python SDK pointed at the",
        "control plane, SigV4 access keys), what it does not, and where it differs from SageMaker.",
        "Generated by `python -m orchestrator.api.aws.compat` from the operation tables; a test",
        "fails when this page is stale.",
        "",
        "## Supported",
        "",
        "### SageMaker (`sagemaker`, awsJson1_1)",
        "",
        *_table([(row.name, row.note) for row in TABLE]),
    ]
    others: list[tuple[str, list[str]]] = []
    for module_name, title, signing, protocol in SERVICES:
        module = _module(module_name)
        if module is None:
            continue
        supported: dict[str, str] = getattr(module, "SUPPORTED", {})
        missing: list[str] = list(getattr(module, "NOT_SUPPORTED", []))
        out += [f"### {title} (`{signing}`, {protocol})", "", *_table(sorted(supported.items()))]
        others.append((title, missing))
    out += [
        "### Fields the SageMaker Python SDK sends by default",
        "",
        "| operation | field | here |",
        "|---|---|---|",
        *(f"| `{d.operation}` | `{d.member}` | {d.note} |" for d in DEFAULTS),
        "",
        "## Not supported",
        "",
    ]
    if model_operations is not None:
        missing_sm = [op for op in model_operations if op not in served]
        out += [
            f"SageMaker operations in botocore's model that this server does not serve "
            f"({len(missing_sm)} of {len(model_operations)}); a call is refused with "
            "`UnknownOperationException` naming the operation.",
            "",
        ]
    else:
        missing_sm = [op for op in MOST_USED_MISSING if op not in served]
        out += [
            "The most used SageMaker operations this server does not serve (install botocore",
            "and regenerate for the whole list); a call is refused with",
            "`UnknownOperationException` naming the operation.",
            "",
        ]
    by_group: dict[str, list[str]] = {}
    for op in missing_sm:
        by_group.setdefault(_group(op), []).append(op)
    for name, _ in GROUPS:
        if name in by_group:
            out += [f"- **{name}**: " + ", ".join(f"`{op}`" for op in by_group[name])]
    out.append("")
    for title, missing in others:
        if missing:
            out += [f"- **{title}**: " + ", ".join(f"`{op}`" for op in missing)]
    if any(missing for _, missing in others):
        out.append("")
    out += ["## What SageMaker does that this server does differently", "", DIFFERENCES]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else PAGE
    target.write_text(render(botocore_operations()))
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
