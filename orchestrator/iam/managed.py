"""The built-in managed policies and the built-in roles.

Managed policies (attach them by name to an identity or a role):

- ``AdministratorAccess``: everything.
- ``DataScientist``: train, tune, transform, deploy and invoke, make data sources; create
  anything, and act on
  (describe, stop, update, delete, tag, invoke, read logs of) only the resources it owns: those
  whose ``orchestrator:owner`` tag is the identity's name (the API sets that tag at create
  time, from the caller, whatever the request said). Lists and Search are open (names and
  statuses). Objects: read and write the store. No identities or keys but its own keys.
- ``Invoker``: ``sagemaker:InvokeEndpoint`` on every endpoint. To limit it to some
  endpoints, attach an inline policy instead, with the endpoints' ARNs as ``Resource``.
- ``ReadOnly``: every ``Describe*``, ``List*``, ``Get*`` and ``Search``.

A role is a named set of managed policies an identity may be allowed to assume; a key issued
as a role carries the role's policies only (as an assumed IAM role does). The built-in roles
keep the first keys' meaning: ``admin`` (AdministratorAccess) and ``invoke`` (Invoker), and add
``data-scientist`` and ``read-only``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ValidationError
from orchestrator.iam.policy import Policy, parse_policy

OWNER_TAG = "orchestrator:owner"

_OWN = {"StringEquals": {f"aws:ResourceTag/{OWNER_TAG}": "${aws:username}"}}

DOCUMENTS: dict[str, dict[str, Any]] = {
    "AdministratorAccess": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
    "DataScientist": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CreateAndList",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:Create*",
                    "sagemaker:List*",
                    "sagemaker:Search",
                    "orchestrator:GetMetrics",
                    "machinelearning:CreateDataSource*",
                    "machinelearning:DescribeDataSources",
                ],
                "Resource": "*",
            },
            {
                "Sid": "OwnResources",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:Describe*",
                    "sagemaker:Stop*",
                    "sagemaker:Update*",
                    "sagemaker:Delete*",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                    "sagemaker:InvokeEndpoint",
                    "orchestrator:PreemptTrainingJob",
                    "orchestrator:ExportTrainingJobModel",
                    "orchestrator:Get*Logs",
                    "orchestrator:GetEndpointMonitoring",
                    "machinelearning:GetDataSource",
                    "machinelearning:UpdateDataSource",
                    "machinelearning:DeleteDataSource",
                ],
                "Resource": "arn:aws:sagemaker:*:*:*",
                "Condition": _OWN,
            },
            {"Sid": "Objects", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
            {
                "Sid": "LogsAndMetrics",
                "Effect": "Allow",
                "Action": ["logs:*", "cloudwatch:*"],
                "Resource": "*",
            },
            {
                "Sid": "OwnKeys",
                "Effect": "Allow",
                "Action": [
                    "orchestrator:DescribeUser",
                    "orchestrator:*ApiKey*",
                    "orchestrator:*AccessKey*",
                ],
                "Resource": "arn:aws:iam::*:user/${aws:username}",
            },
        ],
    },
    "Invoker": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "sagemaker:InvokeEndpoint",
                "Resource": "arn:aws:sagemaker:*:*:endpoint/*",
            }
        ],
    },
    "ReadOnly": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "sagemaker:Describe*",
                    "sagemaker:List*",
                    "sagemaker:Search",
                    "orchestrator:Describe*",
                    "orchestrator:List*",
                    "orchestrator:Get*",
                    "machinelearning:Get*",
                    "machinelearning:Describe*",
                    "s3:Get*",
                    "s3:List*",
                    "logs:*",
                    "cloudwatch:*",
                ],
                "Resource": "*",
            }
        ],
    },
}

# Who am I (``GET /api/v1/caller``: the caller's identity, account and default bucket) is
# allowed by every managed policy, as AWS allows STS GetCallerIdentity to anyone signed in.
for _doc in DOCUMENTS.values():
    if _doc["Statement"][0]["Action"] != "*":
        _doc["Statement"].append(
            {"Sid": "WhoAmI", "Effect": "Allow", "Action": "orchestrator:GetCallerIdentity",
             "Resource": "*"}
        )  # fmt: skip

MANAGED: dict[str, Policy] = {name: parse_policy(doc, name=name) for name, doc in DOCUMENTS.items()}

ROLES: dict[str, tuple[str, ...]] = {
    "admin": ("AdministratorAccess",),
    "invoke": ("Invoker",),
    "data-scientist": ("DataScientist",),
    "read-only": ("ReadOnly",),
}


def managed(name: str, field: str = "ManagedPolicies") -> Policy:
    policy = MANAGED.get(name)
    if policy is None:
        raise ValidationError(
            f"{field}: no managed policy {name!r}; the managed policies are "
            f"{', '.join(sorted(MANAGED))}",
            field=field,
        )
    return policy
