"""The usage report on the wire (``GET /api/v1/usage``): shared by the API and the client."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class UsageGroup(BaseModel):
    Group: str
    Kinds: list[str] = []
    InstanceTypes: list[str] = []
    InstanceSeconds: float
    BillableSeconds: float
    SpotSavedSeconds: float
    MemoryGiBSeconds: float
    Predictions: int
    # USD by the price table; None where nothing used had a price (see NoPrice).
    Cost: float | None
    SpotSavings: float
    # Instance types used without a price in the table: their cost is not in Cost.
    NoPrice: list[str] = []


class StorageUsage(BaseModel):
    """One bucket of the object store at report time (a snapshot, not over the window)."""

    Bucket: str
    Objects: int
    Bytes: int
    # USD per month at the table's storage_gb_month (GB: 10^9 bytes).
    MonthlyCost: float


class UsageReport(BaseModel):
    Since: datetime
    Until: datetime
    GroupBy: str
    Currency: str = "USD"
    PriceSource: str
    Groups: list[UsageGroup]
    # The object store's buckets now (empty when the request asked for no storage).
    Storage: list[StorageUsage] = []
    # How tenants are told apart (no tenancy yet): the resource's ``tenant`` tag.
    TenantFrom: str = "the resource's 'tenant' tag"
