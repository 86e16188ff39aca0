"""Elastic Fabric Adapter: per-type lookups, the interfaces and devices they allow, the plan check.

Only a stack synthesized with ENABLE_EFA=1 has this construct; there `enable_efa` (its default
true) still switches every part at plan, so `enable_efa = false` gives the TCP stack back.
"""

from __future__ import annotations

from cdktf import Precondition, TerraformLocal
from constructs import Construct

from launcher.contract import PRECHECK_ENV
from stacks.instance_types import InstanceTypes
from stacks.variables import EFA_ENABLED

COUNT_LOCAL = "efa_interface_count"
INTERFACES_LOCAL = "efa_network_interfaces"
DEVICES_LOCAL = "efa_devices"
LACKING_LOCAL = "efa_unsupported_types"
CROWDED_LOCAL = "efa_crowded_types"
# Interfaces each network card must take: on card 0 the EFA (the primary) and the interface
# Batch attaches to the node's awsvpc task, which lands on card 0 ("The default is network card
# index 0", AWSEC2/latest/APIReference/API_AttachNetworkInterface.html); one EFA on the others.
CARD0_INTERFACES, OTHER_CARD_INTERFACES = 2, 1
# The Batch EFA guide: hostPath /dev/infiniband/uverbsN, the same containerPath, and these
# permissions (docs.aws.amazon.com/batch/latest/userguide/efa.html).
DEVICE_PERMISSIONS = ("READ", "WRITE", "MKNOD")
# What MPI uses over EFA: Open MPI's cm PML on the OFI MTL (the only path to libfabric's efa
# provider; docs.open-mpi.org/en/v5.0.x/tuning-apps/networking/ofi.html) and libfabric held
# to that provider, so a missing device fails instead of falling back to TCP.
ENVIRONMENT = (("FI_PROVIDER", "efa"), ("OMPI_MCA_pml", "cm"), ("OMPI_MCA_mtl", "ofi"),
               ("OMPI_MCA_mtl_ofi_provider_include", "efa"),
               # The launcher's network self-check before each attempt: an EFA job is the
               # one where a slow or broken node costs most, and where a retry elsewhere helps.
               (PRECHECK_ENV, "1"))


def unsupported_types(types: str, wanted: str) -> str:
    """HCL: the wanted instance types whose lookup says they have no EFA, in the given order."""
    return f"[for t in {wanted} : t if !try({types}[t].efa_supported, false)]"


def interface_count(types: str, wanted: str) -> str:
    """HCL: EFA interfaces every wanted type can take, one per network card (0 if one has none)."""
    # One launch template serves every type, so the type with the fewest decides; each
    # interface takes its own network card, so the card count caps it too.
    per_type = (f"[for t in {wanted} : min(try(coalesce({types}[t].efa_maximum_interfaces, 0), 0), "
                f"try(coalesce({types}[t].maximum_network_cards, 1), 1))]")
    return f"min({per_type}...)"


def crowded_types(types: str, wanted: str, count: str) -> str:
    """HCL: the wanted types with a used network card too small for the interfaces put on it."""
    # network_cards is a set of {index, maximum_interfaces, ...}: looked up by index.
    card_max = (f"try(one([for c in {types}[t].network_cards : c.maximum_interfaces "
                "if c.index == i]), 0)")
    needed = f"(i == 0 ? {CARD0_INTERFACES} : {OTHER_CARD_INTERFACES})"
    return (f"[for t in {wanted} : t if anytrue([for i in range({count}) : "
            f"coalesce({card_max}, 0) < {needed}])]")


def network_interfaces(count: str) -> str:
    """HCL: one EFA per network card; device index 0 on card 0 (the primary), 1 on the others."""
    # The EC2 multi-network-card layout: the primary is card 0 device 0, every further
    # card's interface is device 1 (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
    # efa-acc-inst-types.html; the AWS PCS EFA launch template does the same).
    return (f"[for i in range({count}) : {{network_card_index = i, "
            f"device_index = i == 0 ? 0 : 1}}]")


def devices(count: str) -> str:
    """HCL: the job definition's `linuxParameters.devices`, one uverbs device per interface."""
    permissions = ", ".join(f'"{p}"' for p in DEVICE_PERMISSIONS)
    return (f'[for i in range({count}) : {{hostPath = "/dev/infiniband/uverbs${{i}}", '
            f'containerPath = "/dev/infiniband/uverbs${{i}}", permissions = [{permissions}]}}]')


def unsupported_message(lacking: str) -> str:
    """The plan-time error when an instance type has no EFA; it names those types."""
    return (f'enable_efa is true but instance_types [${{join(", ", {lacking})}}] do not support '
            'EFA: list only EFA-capable types (aws ec2 describe-instance-types --filters '
            'Name=network-info.efa-supported,Values=true), or set enable_efa = false.')


def crowded_message(crowded: str) -> str:
    """The plan-time error when a type's network cards cannot take the interfaces; it names them."""
    return (f'enable_efa is true but instance_types [${{join(", ", {crowded})}}] have no room '
            f"on network card 0 for the node's task interface beside the EFA (card 0 must take "
            f"{CARD0_INTERFACES} interfaces, every further card {OTHER_CARD_INTERFACES}): choose "
            "other types (aws ec2 describe-instance-types --instance-types TYPE --query "
            "'InstanceTypes[].NetworkInfo.NetworkCards'), or set enable_efa = false.")


class Efa(Construct):
    """Derives the EFA interfaces and devices from the instance-type lookups, and their checks."""

    def __init__(self, scope: Construct, id_: str, *, instance_types: InstanceTypes) -> None:
        super().__init__(scope, id_)
        types, wanted = instance_types.lookups, instance_types.wanted
        count = f"local.{COUNT_LOCAL}"
        self._local(LACKING_LOCAL,
                    f"{EFA_ENABLED} ? {unsupported_types(types, wanted)} : []")
        self._local(COUNT_LOCAL, f"{EFA_ENABLED} ? {interface_count(types, wanted)} : 0")
        self._local(CROWDED_LOCAL, crowded_types(types, wanted, count))
        self._local(INTERFACES_LOCAL, network_interfaces(count))
        self._local(DEVICES_LOCAL, devices(count))

    def preconditions(self) -> list[Precondition]:
        """Checked at plan, before anything is created: each error names the types at fault."""
        return [Precondition(condition=f"${{length(local.{LACKING_LOCAL}) == 0}}",
                             error_message=unsupported_message(f"local.{LACKING_LOCAL}")),
                Precondition(condition=f"${{length(local.{CROWDED_LOCAL}) == 0}}",
                             error_message=crowded_message(f"local.{CROWDED_LOCAL}"))]

    def _local(self, local_name: str, expression: str) -> TerraformLocal:
        local = TerraformLocal(self, local_name, f"${{{expression}}}")
        # Fixed names: the launch template and the job definition refer to local.<name>.
        local.override_logical_id(local_name)
        return local
