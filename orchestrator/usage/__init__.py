"""Usage and cost: what each training job, endpoint and transform job used (instance-seconds by
instance type, billable and spot-saved seconds, memory provisioned, predictions) and what that
costs by a price table. Pure: the API (``orchestrator.api.usage``) reads the store and hands the
records in; nothing here does I/O but reading a price file."""

from orchestrator.usage.pricing import DEFAULT_PRICES, PriceTable, load_price_table
from orchestrator.usage.report import (
    GROUP_BYS,
    CountChange,
    Usage,
    UsageRow,
    endpoint_usage,
    group_usage,
    instance_seconds,
    training_usage,
    transform_usage,
)

__all__ = [
    "DEFAULT_PRICES",
    "GROUP_BYS",
    "CountChange",
    "PriceTable",
    "Usage",
    "UsageRow",
    "endpoint_usage",
    "group_usage",
    "instance_seconds",
    "load_price_table",
    "training_usage",
    "transform_usage",
]
