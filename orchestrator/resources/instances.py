"""Instance types: what a ``ResourceConfig.InstanceType`` means on a local machine.

The ``ml.*`` names mirror SageMaker's so specs carry over; on the process backend they set
resource limits (CPU-time and memory), not a machine size. ``local`` means no limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int | None
    memory_mib: int | None
    gpus: int = 0


_CATALOG: tuple[InstanceType, ...] = (
    InstanceType("local", None, None),
    InstanceType("local_gpu", None, None, gpus=1),
    InstanceType("ml.t3.medium", 2, 4096),
    InstanceType("ml.t3.large", 2, 8192),
    InstanceType("ml.m5.large", 2, 8192),
    InstanceType("ml.m5.xlarge", 4, 16384),
    InstanceType("ml.m5.2xlarge", 8, 32768),
    InstanceType("ml.m5.4xlarge", 16, 65536),
    InstanceType("ml.c5.large", 2, 4096),
    InstanceType("ml.c5.xlarge", 4, 8192),
    InstanceType("ml.c5.2xlarge", 8, 16384),
    InstanceType("ml.c5.4xlarge", 16, 32768),
    InstanceType("ml.g4dn.xlarge", 4, 16384, gpus=1),
    InstanceType("ml.g4dn.12xlarge", 48, 196608, gpus=4),
    InstanceType("ml.g5.xlarge", 4, 16384, gpus=1),
    InstanceType("ml.p3.2xlarge", 8, 62464, gpus=1),
    InstanceType("ml.p3.8xlarge", 32, 249856, gpus=4),
    InstanceType("ml.p4d.24xlarge", 96, 1179648, gpus=8),
)
INSTANCE_TYPES: dict[str, InstanceType] = {t.name: t for t in _CATALOG}


def instance_type_names() -> list[str]:
    return [t.name for t in _CATALOG]


def check_instance_type(name: str) -> str:
    if name not in INSTANCE_TYPES:
        raise ValueError(
            f"unknown instance type {name!r}; allowed: {', '.join(sorted(INSTANCE_TYPES))}"
        )
    return name


# A ``ResourceConfig.InstanceType`` or ``ProductionVariant.InstanceType`` field.
InstanceTypeName = Annotated[str, AfterValidator(check_instance_type)]
