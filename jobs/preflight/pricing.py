"""The most a job can cost: nodes x on-demand hourly price x attempt timeout x attempts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jobs.preflight.facts import Reader, Unknown

# AmazonEC2 product attributes of a plain Linux on-demand instance on shared tenancy; without
# them GetProducts also returns Windows, dedicated and reservation-capacity SKUs of the type.
_LINUX_ON_DEMAND = {"operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
                    "capacitystatus": "Used", "licenseModel": "No License required"}


@dataclass(frozen=True)
class Estimate:
    """The bound and its factors; `usd` is None when the price or the timeout is unknown."""

    nodes: int
    instance_type: str | None
    hourly_usd: float | None
    timeout_s: int | None
    attempts: int
    price_note: str = ""

    @property
    def usd(self) -> float | None:
        """nodes x hourly price x timeout hours x attempts."""
        if self.hourly_usd is None or self.timeout_s is None:
            return None
        return self.nodes * self.hourly_usd * self.timeout_s / 3600 * self.attempts

    def line(self) -> str:
        """One line saying the bound and how it was reached."""
        if self.instance_type is None:  # the note says why the types are unknown, if they are
            return f"max cost: unknown ({self.price_note or 'no instance type fits the request'})"
        if self.hourly_usd is None:
            return f"max cost: price unknown for {self.instance_type} ({self.price_note})"
        factors = (f"{self.nodes} nodes x ${self.hourly_usd:.4f}/h ({self.instance_type} "
                   "on-demand)")
        if self.timeout_s is None:
            return (f"max cost: no bound: {factors}, but no attempt timeout "
                    "(set --timeout or the job definition's timeout)")
        return (f"max cost: ${self.usd:,.2f} = {factors} x {self.timeout_s / 3600:g} h attempt "
                f"timeout x {self.attempts} attempt{'s' if self.attempts != 1 else ''}")

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"nodes": self.nodes, "instanceType": self.instance_type,
                "hourlyUsd": self.hourly_usd, "attemptTimeoutSeconds": self.timeout_s,
                "attempts": self.attempts, "maxUsd": self.usd, "note": self.price_note or None}


def on_demand_price(reader: Reader, instance_type: str, region: str) -> float | Unknown:
    """USD per hour of a Linux on-demand instance of this type in this region."""
    return product_price(reader, "AmazonEC2",
                         {"instanceType": instance_type, "regionCode": region, **_LINUX_ON_DEMAND},
                         "Hrs", f"Linux on-demand price for {instance_type} in {region}")


def product_price(reader: Reader, service: str, terms: dict[str, str], unit: str,
                  what: str) -> float | Unknown:
    """The first positive on-demand USD price per `unit` of the products matching every term."""
    filters = [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]
    found = reader.call("pricing", "get_products", ServiceCode=service, Filters=filters,
                        FormatVersion="aws_v1", MaxResults=10)
    if isinstance(found, Unknown):
        return found
    for raw in found.get("PriceList", []):
        product = json.loads(raw) if isinstance(raw, str) else raw
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                usd = float(dimension.get("pricePerUnit", {}).get("USD", 0) or 0)
                if usd > 0 and dimension.get("unit", unit) == unit:
                    return usd
    return Unknown(f"the Price List API has no {what}")
