"""What the stack's FSx for Lustre file system costs a month, shown beside a job's bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.preflight.facts import Reader, Unknown
from jobs.preflight.pricing import product_price

# AmazonFSx product attributes of Lustre's persistent SSD storage; the price per GB-month
# includes the throughput tier (aws.amazon.com/fsx/lustre/pricing: "you pay for ... storage
# capacity", per deployment type and MB/s/TiB). Values a real account confirms with
# `aws pricing get-attribute-values --service-code AmazonFSx --attribute-name deploymentOption`.
_LUSTRE_SSD = {"fileSystemType": "Lustre", "storageType": "SSD"}
_DEPLOYMENT_OPTIONS = {"PERSISTENT_1": "Persistent_1", "PERSISTENT_2": "Persistent_2"}
MONTH_HINT = "a month is billed per second of the file system's life, stopped jobs or not"


@dataclass(frozen=True)
class LustreCost:
    """The file system's size and tier, and its price per GB-month (None when unknown)."""

    file_system_id: str
    capacity_gib: int | None
    deployment_type: str | None
    per_unit_throughput: int | None
    usd_per_gib_month: float | None
    note: str = ""

    @property
    def usd_month(self) -> float | None:
        """capacity x price per GB-month."""
        if self.capacity_gib is None or self.usd_per_gib_month is None:
            return None
        return self.capacity_gib * self.usd_per_gib_month

    def line(self) -> str:
        """One line: the monthly cost and its factors, or why it is unknown."""
        what = f"FSx for Lustre {self.file_system_id}"
        if self.capacity_gib is None:
            return f"{what}: monthly cost unknown ({self.note})"
        tier = f"{self.deployment_type}, {self.per_unit_throughput} MB/s/TiB"
        if self.usd_month is None:
            return f"{what}: {self.capacity_gib} GiB ({tier}): price unknown ({self.note})"
        return (f"{what}: ${self.usd_month:,.2f}/month = {self.capacity_gib} GiB x "
                f"${self.usd_per_gib_month:.4f}/GB-month ({tier}), while the stack exists, "
                "beside the job's own cost")

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"fileSystemId": self.file_system_id, "storageCapacityGiB": self.capacity_gib,
                "deploymentType": self.deployment_type,
                "perUnitStorageThroughput": self.per_unit_throughput,
                "usdPerGibMonth": self.usd_per_gib_month, "monthlyUsd": self.usd_month,
                "note": self.note or None}


def lustre_cost(reader: Reader, file_system_id: str, region: str) -> LustreCost:
    """Read the file system (DescribeFileSystems) and its storage price (GetProducts)."""
    found = reader.call("fsx", "describe_file_systems", FileSystemIds=[file_system_id])
    if isinstance(found, Unknown):
        return LustreCost(file_system_id, None, None, None, None, found.reason)
    systems = found.get("FileSystems", [])
    if not systems:
        return LustreCost(file_system_id, None, None, None, None,
                          "DescribeFileSystems does not list it")
    system = systems[0]
    lustre = system.get("LustreConfiguration", {})
    capacity = int(system.get("StorageCapacity", 0))
    deployment = lustre.get("DeploymentType", "")
    throughput = lustre.get("PerUnitStorageThroughput")
    price = gib_month_price(reader, region, deployment, throughput)
    return LustreCost(file_system_id, capacity, deployment, throughput,
                      price if isinstance(price, float) else None,
                      price.reason if isinstance(price, Unknown) else "")


def gib_month_price(reader: Reader, region: str, deployment: str,
                    throughput: int | None) -> float | Unknown:
    """USD per GB-month of Lustre SSD storage of this deployment type and throughput tier."""
    option = _DEPLOYMENT_OPTIONS.get(deployment)
    if option is None or throughput is None:
        return Unknown(f"no price lookup for deployment type {deployment or 'unknown'}")
    terms = {"regionCode": region, "deploymentOption": option,
             "throughputCapacity": str(throughput), **_LUSTRE_SSD}
    return product_price(reader, "AmazonFSx", terms, "GB-Mo",
                         f"{option} {throughput} MB/s/TiB Lustre SSD price in {region}")
