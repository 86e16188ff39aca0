"""Availability zones of the subnets: the pinned one offers every instance type the stack uses."""

from __future__ import annotations

from cdktf import (
    DataResource,
    Postcondition,
    Precondition,
    TerraformLocal,
    TerraformResourceLifecycle,
    TerraformVariable,
)
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
OFFERED_LOCAL = "placement_zone_candidates"
# Regular zone ids such as use1-az4 (Local and Wavelength zones have longer ids).
ZONE_ID_PATTERN = r"^[a-z]+[0-9]+-az[0-9]+$"


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


def pin_message(pin: str, wanted: str, offered: str) -> str:
    """The plan-time error when placement_zone_id does not offer every type."""
    return (f'placement_zone_id = "${{{pin}}}" does not offer all of instance_types '
            f'[${{join(", ", {wanted})}}]: use one of [${{join(", ", {offered})}}], or "" to '
            "let the stack choose.")


def moved_message(kept: str, wanted: str, offered: str) -> str:
    """The error when the zone kept since the first apply no longer offers every type."""
    return (f"The placement zone ${{{kept}}}, kept since the first apply, does not offer all of "
            f'instance_types [${{join(", ", {wanted})}}]: set placement_zone_id to one that does '
            f"([${{join(\", \", {offered})}}]); that replaces the pinned subnet, its EFS mount "
            "target and the multi-node compute environment.")


class Zones(Construct):
    """Chooses the pinned zone (all types offered) once, and a second zone, by zone id.

    Zone ids name the same physical zone in every account. The stack's choice (the lowest id
    offering every type) is made at the first apply and kept in a terraform_data whose input's
    later changes are ignored: a zone that AWS starts offering the types in later would
    otherwise move the subnets, mount targets and environments. `placement_zone_id`, when set,
    wins (changing it moves them on purpose).
    """

    def __init__(self, scope: Construct, id_: str, *, instance_types: TerraformVariable,
                 pin: TerraformVariable, region: str) -> None:
        super().__init__(scope, id_)
        self._wanted = f"var.{instance_types.friendly_unique_id}"
        self._pin = f"var.{pin.friendly_unique_id}"
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
        self._local(OFFERED_LOCAL, offering_zones(zone_ids, _ref(offerings, "locations"),
                                                  _ref(offerings, "instance_types"),
                                                  self._wanted))
        offered = f"local.{OFFERED_LOCAL}"
        kept = self._add_kept_choice(offered)
        self._pinned = self._local(PINNED_LOCAL, f'{self._pin} != "" ? {self._pin} : {kept}')
        self._other = self._local(OTHER_LOCAL, other_zone(zone_ids, f"local.{PINNED_LOCAL}"))

    def _add_kept_choice(self, offered: str) -> str:
        """The terraform_data keeping the stack's choice; returns a reference to it (no ${})."""
        wanted, pin = self._wanted, self._pin
        kept = DataResource(self, "placement_zone", lifecycle=TerraformResourceLifecycle(
            ignore_changes=["input"],
            # Checked on the choice at every plan; the kept zone after it is known.
            precondition=[
                Precondition(condition=f'${{{pin} != "" || length({offered}) > 0}}',
                             error_message=no_zone_message(wanted, self._region)),
                Precondition(condition=f'${{{pin} == "" || contains({offered}, {pin})}}',
                             error_message=pin_message(pin, wanted, offered))],
            postcondition=[Postcondition(
                condition=f'${{{pin} != "" || contains({offered}, self.input)}}',
                error_message=moved_message("self.input", wanted, offered))]))
        # Raw: DataResource types input as a map.
        kept.add_override("input", f"${{{first_zone(offered)}}}")
        # `input`, not `output`: known at the first plan too (output is known only after
        # apply, which would show the subnets of an existing stack replaced on upgrade), and
        # with its changes ignored it stays the first apply's value.
        return f"{kept.terraform_resource_type}.{kept.friendly_unique_id}.input"

    @property
    def pinned_zone_id(self) -> str:
        """Zone id of the placement-group subnet."""
        return self._pinned.as_string

    @property
    def second_zone_id(self) -> str:
        """Zone id of the second private subnet (EFS mount target, endpoints, Spot)."""
        return self._other.as_string

    def _local(self, local_name: str, expression: str) -> TerraformLocal:
        local = TerraformLocal(self, local_name, f"${{{expression}}}")
        # Fixed names: the expressions above refer to each other as local.<name>.
        local.override_logical_id(local_name)
        return local


def _ref(data_source: DataAwsAvailabilityZones | DataAwsEc2InstanceTypeOfferings,
         attribute: str) -> str:
    return (f"data.{data_source.terraform_resource_type}.{data_source.friendly_unique_id}"
            f".{attribute}")
