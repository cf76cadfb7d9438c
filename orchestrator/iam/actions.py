"""Every action a policy may name: SageMaker's names for what SageMaker has, the AWS
services' names for what the gateway speaks (S3, CloudWatch Logs, CloudWatch), and
``orchestrator:`` for what only this product has (keys, identities, exports, logs over REST).

A policy is checked against this catalog when it is parsed: an unknown prefix or name is a 400
naming it, and a wildcard is expanded against it once, when the policy is compiled.
"""

from __future__ import annotations

SAGEMAKER = frozenset(
    {
        "AddTags", "DeleteTags", "ListTags", "Search",
        "CreateTrainingJob", "DescribeTrainingJob", "ListTrainingJobs", "StopTrainingJob",
        "DeleteTrainingJob",
        "CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob",
        "ListHyperParameterTuningJobs", "ListTrainingJobsForHyperParameterTuningJob",
        "StopHyperParameterTuningJob", "DeleteHyperParameterTuningJob",
        "CreateTransformJob", "DescribeTransformJob", "ListTransformJobs", "StopTransformJob",
        "DeleteTransformJob",
        "CreateModel", "DescribeModel", "ListModels", "DeleteModel",
        "CreateEndpointConfig", "DescribeEndpointConfig", "ListEndpointConfigs",
        "DeleteEndpointConfig",
        "CreateEndpoint", "DescribeEndpoint", "ListEndpoints", "UpdateEndpoint",
        "UpdateEndpointWeightsAndCapacities", "DeleteEndpoint", "InvokeEndpoint",
        "ListAlgorithms", "DescribeAlgorithm",
    }
)  # fmt: skip

ORCHESTRATOR = frozenset(
    {
        # jobs and endpoints, beyond SageMaker's API
        "PreemptTrainingJob", "ExportTrainingJobModel", "GetTrainingJobLogs",
        "GetTransformJobLogs", "GetEndpointMonitoring", "GetMetrics",
        # identities and their keys
        "CreateUser", "DescribeUser", "ListUsers", "UpdateUser", "DeleteUser",
        "CreateApiKey", "ListApiKeys", "RotateApiKey", "RevokeApiKey",
        "CreateAccessKey", "ListAccessKeys", "RevokeAccessKey",
        "ListPolicies", "GetPolicy",
        # master key versions of the object store's keyring, the audit trail, host files
        "DescribeMasterKeys", "RotateMasterKey", "RetireMasterKey",
        "VerifyAuditTrail", "GetAuditPublicKey", "ReadHostFiles",
        # the usage and cost report
        "GetUsage",
        # accounts (tenants): made by an administrator of the server's own account
        "CreateAccount", "ListAccounts", "GetCallerIdentity",
    }
)  # fmt: skip

# Amazon ML's data sources (``/api/v1/data-sources``).
MACHINELEARNING = frozenset(
    {
        "CreateDataSourceFromS3", "CreateDataSourceFromRDS", "GetDataSource",
        "DescribeDataSources", "UpdateDataSource", "DeleteDataSource",
    }
)  # fmt: skip

S3 = frozenset(
    {
        "ListAllMyBuckets", "CreateBucket", "DeleteBucket", "ListBucket", "GetBucketLocation",
        "PutObject", "GetObject", "DeleteObject", "ListMultipartUploadParts",
        "AbortMultipartUpload",
    }
)  # fmt: skip

LOGS = frozenset(
    {
        "DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents",
        "PutRetentionPolicy", "DeleteRetentionPolicy",
    }
)  # fmt: skip

CLOUDWATCH = frozenset({"GetMetricStatistics", "GetMetricData", "ListMetrics", "PutMetricData",
                        "PutMetricAlarm", "DescribeAlarms", "DeleteAlarms",
                        "DescribeAlarmHistory", "SetAlarmState"})  # fmt: skip

# The local keyring's named keys (what a resource's KmsKeyId names), and the audit trail.
KMS = frozenset({"CreateKey", "ListKeys"})

CLOUDTRAIL = frozenset({"LookupEvents"})

SERVICES: dict[str, frozenset[str]] = {
    "sagemaker": SAGEMAKER,
    "orchestrator": ORCHESTRATOR,
    "machinelearning": MACHINELEARNING,
    "s3": S3,
    "logs": LOGS,
    "cloudwatch": CLOUDWATCH,
    "kms": KMS,
    "cloudtrail": CLOUDTRAIL,
}

# Every action, in a fixed order (the compiled policies index by it).
ALL: tuple[str, ...] = tuple(
    sorted(f"{service}:{name}" for service, names in SERVICES.items() for name in names)
)
_LOWER = {a.lower(): a for a in ALL}


def canonical(action: str) -> str | None:
    """The catalog's spelling of ``action`` (IAM's action names are case-insensitive)."""
    return _LOWER.get(action.lower())
