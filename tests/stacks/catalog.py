"""Made-up DescribeInstanceTypes answers for the terraform runs that stand in for the provider."""

from __future__ import annotations

# As the provider's aws_ec2_instance_type reports them (EfaInfo, NetworkInfo, VCpuInfo,
# MemoryInfo in MiB);
# c6i has no EfaInfo at all. efa1.crowded is made up: an EFA type whose card 0 takes one
# interface only.
CATALOG = {
    "c5n.18xlarge": {"memory_size": 196608, "efa_supported": True, "efa_maximum_interfaces": 1,
                     "maximum_network_cards": 1, "default_vcpus": 72,
                     "network_cards": [{"index": 0, "maximum_interfaces": 15}]},
    "hpc7a.96xlarge": {"memory_size": 786432, "efa_supported": True, "efa_maximum_interfaces": 2,
                       "maximum_network_cards": 2, "default_vcpus": 192,
                       "network_cards": [{"index": 0, "maximum_interfaces": 2},
                                         {"index": 1, "maximum_interfaces": 2}]},
    "p5.48xlarge": {"memory_size": 2097152, "efa_supported": True, "efa_maximum_interfaces": 32,
                    "maximum_network_cards": 32, "default_vcpus": 192,
                    "network_cards": [{"index": i, "maximum_interfaces": 2} for i in range(32)]},
    "c6i.2xlarge": {"memory_size": 16384, "efa_supported": False, "efa_maximum_interfaces": None,
                    "maximum_network_cards": 1, "default_vcpus": 8,
                    "network_cards": [{"index": 0, "maximum_interfaces": 4}]},
    "m5.large": {"memory_size": 8192, "efa_supported": False, "efa_maximum_interfaces": 0,
                 "maximum_network_cards": 1, "default_vcpus": 2,
                 "network_cards": [{"index": 0, "maximum_interfaces": 3}]},
    "efa1.crowded": {"memory_size": 32768, "efa_supported": True, "efa_maximum_interfaces": 1,
                     "maximum_network_cards": 1, "default_vcpus": 16,
                     "network_cards": [{"index": 0, "maximum_interfaces": 1}]},
}


def lookups_local(stack: dict, variable: str = "instance_types") -> tuple[str, str]:
    """(the stack's lookup address for the types of `variable`, a local expression giving the
    catalog's entries instead)."""
    found = stack["data"]["aws_ec2_instance_type"]
    (lookup_id,) = [i for i, d in found.items() if d["for_each"] == f"${{toset(var.{variable})}}"]
    keys = found[lookup_id]["for_each"][2:-1]
    return (f"data.aws_ec2_instance_type.{lookup_id}",
            f"${{{{for t in {keys} : t => local.catalog[t]}}}}")
