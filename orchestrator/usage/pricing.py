"""The price table: USD per instance-hour by instance type, and the spot discount.

The defaults are shaped like SageMaker's on-demand list prices in us-east-1 for the instance
types the product knows; they are defaults, not a quote: point ``ORCH_USAGE_PRICE_FILE`` at a
YAML or JSON file to use your own::

    spot_discount: 0.7          # spot training costs 30% of on-demand
    storage_gb_month: 0.023     # object store, USD per GB-month (S3 Standard's list price)
    prices:                     # USD per instance-hour
      ml.m5.large: 0.115
      ml.g5.xlarge: 1.408

A type missing from the table has no price: the report says so rather than inventing one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ValidationError

# Defaults, shaped like SageMaker's on-demand prices (us-east-1, USD per instance-hour).
# ``local`` and ``local_gpu`` are this machine: free unless a price file says otherwise.
DEFAULT_PRICES: dict[str, float] = {
    "local": 0.0,
    "local_gpu": 0.0,
    "ml.t3.medium": 0.05,
    "ml.t3.large": 0.1,
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.12xlarge": 4.89,
    "ml.g5.xlarge": 1.408,
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
    "ml.p4d.24xlarge": 37.688,
}
# Managed spot training: SageMaker's spot savings are commonly up to 70%.
DEFAULT_SPOT_DISCOUNT = 0.7
# Object storage, USD per GB-month (S3 Standard's first tier in us-east-1).
DEFAULT_STORAGE_GB_MONTH = 0.023


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    # The fraction of the on-demand price spot capacity saves (0.7: pay 30%).
    spot_discount: float = DEFAULT_SPOT_DISCOUNT
    storage_gb_month: float = DEFAULT_STORAGE_GB_MONTH
    source: str = "defaults, shaped like SageMaker's on-demand prices"

    def hourly(self, instance_type: str) -> float | None:
        """USD per instance-hour, or None: no price for this type."""
        return self.prices.get(instance_type)

    def cost(self, instance_type: str, seconds: float, *, spot: bool = False) -> float | None:
        price = self.hourly(instance_type)
        if price is None:
            return None
        rate = price * (1.0 - self.spot_discount) if spot else price
        return rate * seconds / 3600.0


def load_price_table(path: Path | None) -> PriceTable:
    """The table in ``path`` (YAML or JSON), or the defaults when None. A malformed file is an
    error naming the file and the line (a parse error) or the field (a bad value)."""
    if path is None:
        return PriceTable()
    try:
        text = path.read_text()
    except OSError as e:
        raise ValidationError(
            f"cannot read the price file {path}: {e.strerror or e}; fix "
            "ORCH_USAGE_PRICE_FILE or unset it for the defaults",
            field="ORCH_USAGE_PRICE_FILE",
        ) from e
    doc = _parse(path, text)
    if not isinstance(doc, dict):
        raise ValidationError(
            f"{path}: the price file must be a mapping with 'prices' (instance type -> USD "
            "per hour) and optionally 'spot_discount'",
            field="ORCH_USAGE_PRICE_FILE",
        )
    unknown = sorted(set(doc) - {"prices", "spot_discount", "storage_gb_month"})
    if unknown:
        raise ValidationError(
            f"{path}: unknown field {unknown[0]!r}; the fields are 'prices', 'spot_discount' "
            "and 'storage_gb_month'",
            field=f"{path}:{unknown[0]}",
        )
    raw = doc.get("prices", {})
    if not isinstance(raw, dict):
        raise ValidationError(
            f"{path}: 'prices' must map instance types to USD per instance-hour",
            field=f"{path}:prices",
        )
    prices: dict[str, float] = {}
    for name, value in raw.items():
        prices[str(name)] = _number(path, f"prices.{name}", value, upper=None)
    discount = _number(
        path, "spot_discount", doc.get("spot_discount", DEFAULT_SPOT_DISCOUNT), upper=1.0
    )
    storage = _number(
        path, "storage_gb_month", doc.get("storage_gb_month", DEFAULT_STORAGE_GB_MONTH), upper=None
    )
    return PriceTable(
        prices=prices, spot_discount=discount, storage_gb_month=storage, source=str(path)
    )


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ValidationError(
                f"{path}: line {e.lineno}, column {e.colno}: {e.msg}",
                field="ORCH_USAGE_PRICE_FILE",
            ) from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ValidationError(f"{path}: {where}{problem}", field="ORCH_USAGE_PRICE_FILE") from e


def _number(path: Path, name: str, value: Any, *, upper: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(
            f"{path}: {name} must be a number, not {value!r}", field=f"{path}:{name}"
        )
    number = float(value)
    if number < 0 or (upper is not None and number > upper):
        bound = f"between 0 and {upper:g}" if upper is not None else "0 or more"
        raise ValidationError(
            f"{path}: {name} must be {bound}, not {value!r}", field=f"{path}:{name}"
        )
    return number
