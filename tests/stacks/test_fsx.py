"""The FSx for Lustre switch as synthesized: what ENABLE_FSX=1 adds, and nothing without it."""

from __future__ import annotations

import email
import json
import re

import pytest

from stacks.config import ConfigError, StackSettings
from tests.stacks.conftest import MNP_TEMPLATE, only, resources

ON = "${var.enable_fsx ? 1 : 0}"
COMPUTE_GROUP = "${aws_security_group.network_compute_sg_62EBFF7D.id}"
FSX_KINDS = ("aws_fsx_lustre_file_system", "aws_fsx_data_repository_association")
# Lustre's ports (docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html):
# 988 and 1018-1023, both ways, within the file system's group and with its clients.
LNET = {(988, 988), (1018, 1023)}


def _fsx_group_ref(stack: dict) -> str:
    (key,) = [k for k in stack["resource"]["aws_security_group"] if k.startswith("lustre_")]
    return f"${{aws_security_group.{key}[0].id}}"


def _user_data_parts(stack: dict) -> list[email.message.Message]:
    """The FSx user data (the Terraform local the launch template base64-encodes) as MIME."""
    template = only(stack, "aws_launch_template", MNP_TEMPLATE)["user_data"]
    match = re.fullmatch(
        r'\$\{var\.enable_fsx \? base64encode\(local\.(\w+)\) : "[A-Za-z0-9+/=]+"\}', template)
    assert match, template[:200]
    archive = email.message_from_string(stack["locals"][match.group(1)])
    assert archive.get_content_type() == "multipart/mixed" and archive["MIME-Version"] == "1.0"
    return [part for part in archive.walk() if not part.is_multipart()]


def _container(definition: dict) -> dict:
    text = definition.get("node_properties") or definition["container_properties"]
    props = json.loads(text)
    return props["nodeRangeProperties"][0]["container"] if "nodeRangeProperties" in props else props


def _render(text: str, on: bool) -> str:
    """The plan-time choice `%{ if var.enable_fsx }A%{ else }B%{ endif }` as Terraform makes it."""
    return re.sub(r"%\{ if var\.enable_fsx \}(.*?)%\{ else \}(.*?)%\{ endif \}",
                  lambda m: m.group(1 if on else 2), text, flags=re.S)


@pytest.mark.parametrize(("raw", "expected"), [({}, False), ({"ENABLE_FSX": "1"}, True),
                                               ({"ENABLE_FSX": "off"}, False)])
def test_enable_fsx_env_sets_the_default(raw: dict[str, str], expected: bool) -> None:
    assert StackSettings.from_env({**raw, "AWS_REGION": "us-east-1"}).enable_fsx is expected


def test_bad_enable_fsx_is_named() -> None:
    with pytest.raises(ConfigError, match="ENABLE_FSX='maybe' is not allowed: true or false"):
        StackSettings.from_env({"ENABLE_FSX": "maybe", "AWS_REGION": "us-east-1"})


# PERSISTENT_2 SSD capacity: "1200 GiB, 2400 GiB, and increments of 2400 GiB"; throughput
# "125, 250, 500, 1000 MB/s/TiB" (FSx API reference, CreateFileSystem and
# CreateFileSystemLustreConfiguration).
@pytest.mark.parametrize("gib", [1200, 2400, 4800, 72000])
def test_allowed_capacities(gib: int) -> None:
    assert StackSettings(fsx_storage_capacity_gib=gib).fsx_storage_capacity_gib == gib


@pytest.mark.parametrize("gib", [0, 1199, 1800, 3600, 2401, -2400])
def test_refused_capacities_are_named(gib: int) -> None:
    with pytest.raises(ConfigError, match=rf"fsx_storage_capacity_gib={gib} is not allowed: "
                                          "1200 or a multiple of 2400 GiB"):
        StackSettings(fsx_storage_capacity_gib=gib)


@pytest.mark.parametrize("mbps", [50, 100, 200, 0, 2000])
def test_refused_throughputs_are_named(mbps: int) -> None:
    with pytest.raises(ConfigError, match=rf"fsx_throughput_per_unit={mbps} is not allowed: "
                                          "one of 125, 250, 500, 1000 MB/s/TiB"):
        StackSettings(fsx_throughput_per_unit=mbps)


def test_fsx_off_leaves_nothing_fsx(synthesized: dict) -> None:
    for kind in FSX_KINDS:
        assert kind not in synthesized["resource"]
    assert not [k for k in synthesized["resource"]["aws_security_group"] if "lustre" in k]
    assert "node_user_data_fsx" not in synthesized["locals"]
    for definition in resources(synthesized, "aws_batch_job_definition"):
        assert [v["name"] for v in _container(definition)["volumes"]] == ["efs"]
    assert synthesized["output"]["fsx_mount_path"]["value"] == ""
    assert synthesized["output"]["fsx_file_system_id"]["value"] == ""
    # The switch exists but refuses to turn on in a stack synthesized without it.
    variable = synthesized["variable"]["enable_fsx"]
    assert variable["default"] is False
    assert variable["validation"][0]["condition"] == "${!var.enable_fsx}"
    assert "ENABLE_FSX=1 make synth" in variable["validation"][0]["error_message"]


def test_variables_validate_what_the_api_allows(synthesized_fsx: dict) -> None:
    variables = synthesized_fsx["variable"]
    assert variables["enable_fsx"]["default"] is True and "validation" not in variables[
        "enable_fsx"]
    capacity = variables["fsx_storage_capacity_gib"]
    assert capacity["default"] == 1200
    assert capacity["validation"][0]["condition"] == (
        "${var.fsx_storage_capacity_gib == 1200 || (var.fsx_storage_capacity_gib > 0 && "
        "var.fsx_storage_capacity_gib % 2400 == 0)}")
    throughput = variables["fsx_throughput_per_unit"]
    assert throughput["default"] == 125
    assert throughput["validation"][0]["condition"] == (
        "${contains([125, 250, 500, 1000], var.fsx_throughput_per_unit)}")


def test_file_system_is_persistent_2_in_the_pinned_subnet_with_the_stack_key(
        synthesized_fsx: dict) -> None:
    fs = only(synthesized_fsx, "aws_fsx_lustre_file_system")
    assert fs["count"] == ON
    assert (fs["deployment_type"], fs["storage_type"]) == ("PERSISTENT_2", "SSD")
    assert fs["storage_capacity"] == "${var.fsx_storage_capacity_gib}"
    assert fs["per_unit_storage_throughput"] == "${var.fsx_throughput_per_unit}"
    # The placement group's zone (the multi-node environment's one subnet): no cross-zone hop.
    mnp = only(synthesized_fsx, "aws_batch_compute_environment", "compute_compute_environment")
    assert fs["subnet_ids"] == mnp["compute_resources"]["subnets"]
    assert len(fs["subnet_ids"]) == 1
    (key,) = synthesized_fsx["resource"]["aws_kms_key"]
    assert fs["kms_key_id"] == f"${{aws_kms_key.{key}.arn}}"
    assert fs["security_group_ids"] == [_fsx_group_ref(synthesized_fsx)]
    assert fs["tags"]["Name"] == "${var.cluster_name}-lustre"


def test_association_imports_and_exports_every_change(synthesized_fsx: dict) -> None:
    dra = only(synthesized_fsx, "aws_fsx_data_repository_association")
    assert dra["count"] == ON
    assert dra["file_system_id"].startswith("${aws_fsx_lustre_file_system.")
    assert dra["file_system_path"] == "/data"
    assert dra["data_repository_path"].startswith("s3://")
    assert dra["batch_import_meta_data_on_create"] is True
    assert dra["delete_data_in_filesystem"] is False
    # AutoImportPolicy / AutoExportPolicy events (FSx API reference): all three each way.
    events = ["NEW", "CHANGED", "DELETED"]
    assert dra["s3"] == {"auto_import_policy": {"events": events},
                         "auto_export_policy": {"events": events}}


def test_security_group_rules_are_lustres_ports_and_nothing_else(synthesized_fsx: dict) -> None:
    fsx = _fsx_group_ref(synthesized_fsx)
    group = only(synthesized_fsx, "aws_security_group", "lustre_")
    assert "ingress" not in group and "egress" not in group  # rule resources only
    found: dict[tuple[str, str, str], set[tuple[int, int]]] = {}
    for kind in ("ingress", "egress"):
        for rule in resources(synthesized_fsx, f"aws_vpc_security_group_{kind}_rule"):
            if fsx not in (rule["security_group_id"], rule.get("referenced_security_group_id")):
                continue
            assert rule["count"] == ON and rule["ip_protocol"] == "tcp"
            assert "cidr_ipv4" not in rule  # groups only, never an address range
            on = "fsx" if rule["security_group_id"] == fsx else "compute"
            peer = "fsx" if rule["referenced_security_group_id"] == fsx else "compute"
            groups = (rule["security_group_id"], rule["referenced_security_group_id"])
            assert COMPUTE_GROUP in groups or on == peer == "fsx"
            found.setdefault((kind, on, peer), set()).add((rule["from_port"], rule["to_port"]))
    assert found == {(kind, on, peer): LNET for kind in ("ingress", "egress")
                     for on, peer in (("fsx", "fsx"), ("fsx", "compute"), ("compute", "fsx"))}


def test_user_data_parts_install_the_client_and_mount_before_ecs(synthesized_fsx: dict) -> None:
    first, lustre = _user_data_parts(synthesized_fsx)
    for part in (first, lustre):
        assert part.get_content_type() == "text/x-shellscript"
        assert part.get_content_charset() == "us-ascii"
    # The first part is the stack's usual one, unchanged.
    assert "ECS_AWSVPC_BLOCK_IMDS=true" in first.get_payload()
    script = lustre.get_payload()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    fs = "aws_fsx_lustre_file_system.lustre_file_system_77DE98EA[0]"
    source = f'${{try({fs}.dns_name, "")}}@tcp:/${{try({fs}.mount_name, "")}}'
    # Amazon Linux 2023: "sudo dnf install -y lustre-client" (FSx Lustre guide,
    # install-lustre-client.html), retried.
    assert "  dnf install -y lustre-client && break" in lines
    assert any(line.startswith("rpm -q lustre-client ||") and "exit 1" in line for line in lines)
    # The guide's mount: DNS name @tcp:/mount name, -o relatime,flock (mounting-ec2-instance.html),
    # retried until the file system answers.
    mount = [line for line in lines if " mount -t lustre " in line]
    assert mount == [f"until mountpoint -q /fsx || mount -t lustre -o relatime,flock {source} "
                     "/fsx; do"]
    # Mounted again at every boot, after the network (mount-fs-auto-mount-onreboot.html) ...
    (fstab,) = [line for line in lines if ">> /etc/fstab" in line]
    assert f"echo '{source} /fsx lustre relatime,flock,_netdev," in fstab
    # ... and the ECS agent, hence every job, waits for it (systemd.unit: RequiresMountsFor).
    assert ("printf '[Unit]\\nRequiresMountsFor=/fsx\\n' > "
            "/etc/systemd/system/ecs.service.d/fsx.conf") in lines
    assert lines.index("systemctl daemon-reload") < lines.index(mount[0])
    # Its own text has no template syntax that Terraform would read (only the two names).
    assert "%{" not in script
    assert set(re.findall(r"\$\{[^}]*\}", script)) == {
        f'${{try({fs}.dns_name, "")}}', f'${{try({fs}.mount_name, "")}}'}


def test_user_data_without_fsx_is_the_plain_one(synthesized: dict, synthesized_fsx: dict) -> None:
    template = only(synthesized_fsx, "aws_launch_template", MNP_TEMPLATE)["user_data"]
    plain = only(synthesized, "aws_launch_template", MNP_TEMPLATE)["user_data"]
    assert template.endswith(f' : "{plain}"}}')


@pytest.mark.parametrize("on", [True, False])
def test_job_definitions_get_the_host_mount_only_when_on(synthesized_fsx: dict, on: bool) -> None:
    # The multi-node and Spot definitions run on EC2 nodes that mount Lustre; Fargate tasks (the
    # staging jobs) have no host to mount it and no host volumes (Batch API Volume.host).
    by_platform: dict[str, list[dict]] = {}
    for definition in resources(synthesized_fsx, "aws_batch_job_definition"):
        by_platform.setdefault(definition["platform_capabilities"][0], []).append(definition)
    assert len(by_platform["EC2"]) == 2
    for definition in by_platform.get("FARGATE", []):
        assert "fsx" not in json.dumps(_container(definition)["volumes"])
    for definition in by_platform["EC2"]:
        key = "node_properties" if "node_properties" in definition else "container_properties"
        container = _container({key: _render(definition[key], on)})
        volumes = {v["name"]: v for v in container["volumes"]}
        mounts = {m["sourceVolume"]: m for m in container["mountPoints"]}
        assert "efs" in volumes and mounts["efs"]["containerPath"] == "/mnt/efs"
        if not on:
            assert set(volumes) == set(mounts) == {"efs"}
            continue
        # A host volume (Batch API Volume.host.sourcePath) of the instance's Lustre mount.
        assert volumes["fsx"] == {"name": "fsx", "host": {"sourcePath": "/fsx"}}
        assert mounts["fsx"] == {"sourceVolume": "fsx", "containerPath": "/fsx",
                                 "readOnly": False}


def test_outputs_name_the_file_system_and_mount(synthesized_fsx: dict) -> None:
    outputs = synthesized_fsx["output"]
    assert outputs["fsx_mount_path"]["value"] == '${var.enable_fsx ? "/fsx" : ""}'
    assert outputs["fsx_file_system_id"]["value"] == (
        '${var.enable_fsx ? try(aws_fsx_lustre_file_system.lustre_file_system_77DE98EA[0].id, '
        '"") : ""}')


def test_key_admits_the_fsx_link_role_through_s3_only(synthesized: dict,
                                                      synthesized_fsx: dict) -> None:
    # FSx reads and writes a linked bucket as AWSServiceRoleForFSxS3Access_<fs id>; a bucket
    # encrypted with a customer managed key must admit it in the key policy (FSx for Lustre
    # guide, s3-server-side-encryption-support.html).
    (key,) = resources(synthesized_fsx, "aws_kms_key")
    statements = {s["Sid"]: s for s in json.loads(key["policy"])["Statement"]}
    fsx = statements["FsxLustreDataRepository"]
    assert fsx["Condition"]["ArnLike"]["aws:PrincipalArn"].endswith(
        ":role/aws-service-role/s3.data-source.lustre.fsx.amazonaws.com/"
        "AWSServiceRoleForFSxS3Access_fs-*")
    assert set(fsx["Condition"]["StringEquals"]) == {"kms:CallerAccount", "kms:ViaService"}
    assert fsx["Condition"]["StringEquals"]["kms:ViaService"].startswith("s3.")
    (plain,) = resources(synthesized, "aws_kms_key")
    assert "FsxLustreDataRepository" not in plain["policy"]
