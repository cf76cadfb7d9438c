"""Every AWS service the control plane serves, and the gateway in front of the management API."""

from __future__ import annotations

from orchestrator.api.aws.cloudwatch import CloudWatchService
from orchestrator.api.aws.gateway import ASGIApp, AwsGateway, AwsService
from orchestrator.api.aws.logs import LogsService
from orchestrator.api.aws.s3 import S3Service
from orchestrator.api.aws.sagemaker import SageMakerService
from orchestrator.api.aws.sts import StsService
from orchestrator.api.service import ControlPlane
from orchestrator.ratelimit import TokenBuckets


def services(cp: ControlPlane) -> list[AwsService]:
    s3 = S3Service(
        cp.objects,
        region=cp.settings.region,
        account_id=cp.settings.account_id,
        spool=cp.settings.home,
    )
    s3.reserved_bucket = cp.settings.audit.bucket
    return [
        SageMakerService(cp),
        LogsService(cp),
        CloudWatchService(cp),
        StsService(cp.settings.account_id),
        s3,
    ]


def gateway(api: ASGIApp, cp: ControlPlane, *, limits: TokenBuckets | None = None) -> AwsGateway:
    """The AWS protocols in front of ``api``, signatures checked against ``cp``'s access keys;
    ``limits``: the per-key rate limits (shared with the management API)."""
    return AwsGateway(
        api,
        services(cp),
        signing_keys=cp.access_keys.signing_key,
        region=cp.settings.region,  # signatures are checked against the wall clock
        limits=limits,
    )
