"""Availability zones of the subnets: the pinned one offers every instance type the stack uses."""

from __future__ import annotations

from cdktf import Precondition, TerraformLocal, TerraformVariable
from cdktf_cdktf_provider_aws.data_aws_availability_zones import (
    DataAwsAvailabilityZones,
    DataAwsAvailabilityZonesFilter,
)
from cdktf_cdktf_provider_aws.data_aws_ec2_instance_type_offerings import (
    DataAwsEc2InstanceTypeOfferings,
    DataAwsEc2InstanceTypeOfferingsFilter,
)
from constructs import Construct

PINNED_LOCAL = "placement_zone_id"
OTHER_LOCAL = "second_zone_id"


def offering_zones(zone_ids: str, locations: str, offered_types: str, wanted: str) -> str:
    """HCL: the zone ids, sorted, in which every wanted instance type is offered."""
    # Offerings are (type, zone) pairs filtered to the wanted types: a zone offers them all
    # when it has as many distinct types as were asked for.
    return (f"sort([for z in {zone_ids} : z if length(distinct([for i, loc in {locations} : "
            f"{offered_types}[i] if loc == z])) == length(distinct({wanted}))])")


def first_zone(zones: str) -> str:
    """HCL: the first zone of a list, or "" so that a precondition can explain an empty one."""
    return f'try({zones}[0], "")'


def other_zone(zone_ids: str, pinned: str) -> str:
    """HCL: the lowest zone id other than the pinned one, or ""."""
    return f'try([for z in sort({zone_ids}) : z if z != {pinned}][0], "")'


def no_zone_message(wanted: str, region: str) -> str:
    """The plan-time error when no zone offers all instance types; it names them."""
    return (f'No availability zone of {region} offers all of instance_types '
            f'[${{join(", ", {wanted})}}]: a cluster placement group needs one zone that offers '
            'every type. Choose types offered together (aws ec2 describe-instance-type-offerings '
            '--location-type availability-zone-id --filters Name=instance-type,Values=TYPE).')


class Zones(Construct):
    """Chooses, at plan time, the pinned zone (all types offered) and a second zone by zone id.

    Zone ids name the same physical zone in every account, and AWS gives a new zone a new id,
    so sorting by id keeps both choices where they are when the region grows.
    """

    def __init__(self, scope: Construct, id_: str, *, instance_types: TerraformVariable,
                 region: str) -> None:
        super().__init__(scope, id_)
        self._wanted = f"var.{instance_types.friendly_unique_id}"
        self._region = region
        # Regular zones only: Local and Wavelength zones have no EFS mount targets.
        azs = DataAwsAvailabilityZones(self, "azs", state="available", filter=[
            DataAwsAvailabilityZonesFilter(name="opt-in-status", values=["opt-in-not-required"])])
        # Location type "availability-zone-id": offerings are listed per zone id (provider docs,
        # data-sources/ec2_instance_type_offerings: location_type).
        offerings = DataAwsEc2InstanceTypeOfferings(
            self, "offerings", location_type="availability-zone-id",
            filter=[DataAwsEc2InstanceTypeOfferingsFilter(name="instance-type",
                                                          values=instance_types.list_value)])
        zone_ids = _ref(azs, "zone_ids")
        offered = offering_zones(zone_ids, _ref(offerings, "locations"),
                                 _ref(offerings, "instance_types"), self._wanted)
        self._pinned = self._local(PINNED_LOCAL, first_zone(offered))
        self._other = self._local(OTHER_LOCAL, other_zone(zone_ids, f"local.{PINNED_LOCAL}"))

    @property
    def pinned_zone_id(self) -> str:
        """Zone id of the placement-group subnet."""
        return self._pinned.as_string

    @property
    def second_zone_id(self) -> str:
        """Zone id of the second private subnet (EFS mount target, endpoints, Spot)."""
        return self._other.as_string

    def preconditions(self) -> list[Precondition]:
        """Checked at plan, before anything is created: an error that names the types."""
        return [Precondition(condition=f'${{local.{PINNED_LOCAL} != ""}}',
                             error_message=no_zone_message(self._wanted, self._region))]

    def _local(self, local_name: str, expression: str) -> TerraformLocal:
        local = TerraformLocal(self, local_name, f"${{{expression}}}")
        # Fixed names: the expressions above refer to each other as local.<name>.
        local.override_logical_id(local_name)
        return local


def _ref(data_source: DataAwsAvailabilityZones | DataAwsEc2InstanceTypeOfferings,
         attribute: str) -> str:
    return (f"data.{data_source.terraform_resource_type}.{data_source.friendly_unique_id}"
            f".{attribute}")
