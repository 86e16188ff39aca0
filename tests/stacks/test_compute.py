"""The node launch template's user data, as EC2 and Batch will read it."""

from __future__ import annotations

import base64
import binascii
import email
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stacks.compute import ECS_CONFIG, user_data
from tests.stacks.conftest import MNP_TEMPLATE, only

TOOLS = ("unshare", "ip", "iptables", "setpriv")


def _parts(encoded: str) -> list[email.message.Message]:
    archive = email.message_from_bytes(base64.b64decode(encoded, validate=True))
    assert archive.is_multipart() and archive.get_content_type() == "multipart/mixed"
    assert archive["MIME-Version"] == "1.0"
    return [part for part in archive.walk() if not part.is_multipart()]


def test_user_data_is_base64_mime_multipart_blocking_imds(synthesized: dict) -> None:
    encoded = only(synthesized, "aws_launch_template", MNP_TEMPLATE)["user_data"]
    (part,) = _parts(encoded)
    assert part.get_content_type() == "text/x-shellscript"
    script = part.get_payload(decode=True).decode()
    assert script.startswith("#!/bin/bash\n")
    ecs_config = [line for line in script.splitlines() if "/etc/ecs/ecs.config" in line]
    # That one setting and nothing a user did not ask for.
    assert ecs_config == ["echo 'ECS_AWSVPC_BLOCK_IMDS=true' >> /etc/ecs/ecs.config"]
    assert ECS_CONFIG == ("ECS_AWSVPC_BLOCK_IMDS=true",)
    # Host-network (Spot queue) jobs: the job's uid is refused the metadata address.
    assert [line for line in script.splitlines() if line.startswith("iptables")] == [
        "iptables -w --insert OUTPUT --destination 169.254.169.254 --match owner "
        "--uid-owner 1000 --jump REJECT"]


# In a network namespace of its own: the metadata address on lo, a listener on it, the user
# data's iptables lines, then one connection as root (the ECS agent) and one as the job's uid.
IMDS_PROBE = """
set -e
ip link set lo up
ip addr add 169.254.169.254/32 dev lo
{rules}
python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("169.254.169.254", 80)); s.listen(); s.settimeout(10)
open("ready", "w").close()
for _ in range(2):
    try: s.accept()[0].close()
    except OSError: break
' &
listener=$!
while [ ! -e ready ]; do sleep 0.05; done
probe='import socket; socket.create_connection(("169.254.169.254", 80), 5); print("reached")'
python3 -c "$probe" 2>/dev/null || echo refused
setpriv --reuid {uid} --regid {uid} --clear-groups python3 -c "$probe" 2>/dev/null || echo refused
# the listener holds our stdout open: run() would wait out its 10 s accept timeout
kill $listener 2>/dev/null || true
"""


@pytest.mark.skipif(os.geteuid() != 0 or not all(map(shutil.which, TOOLS)),
                    reason=f"needs root and {', '.join(TOOLS)} (a network namespace)")
def test_job_uid_is_refused_the_metadata_address_and_root_is_not(synthesized: dict,
                                                                 tmp_path: Path) -> None:
    # issue 20: hop limit 1 and ECS_AWSVPC_BLOCK_IMDS leave host-network jobs on IMDS.
    (part,) = _parts(only(synthesized, "aws_launch_template", MNP_TEMPLATE)["user_data"])
    script = part.get_payload(decode=True).decode()
    rules = "\n".join(line for line in script.splitlines() if line.startswith("iptables"))
    proc = subprocess.run(["unshare", "--net", "sh", "-c",
                           IMDS_PROBE.format(rules=rules, uid=1000)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["reached", "refused"]


def test_plain_script_would_fail_the_checks() -> None:
    with pytest.raises(AssertionError):
        _parts(base64.b64encode(b"#!/bin/bash\necho hi\n").decode())
    with pytest.raises(binascii.Error):
        _parts(base64.b64decode(user_data(1000)).decode())  # raw MIME is not base64


def test_launch_template_keeps_imdsv2_and_hop_limit(synthesized: dict) -> None:
    options = only(synthesized, "aws_launch_template", MNP_TEMPLATE)["metadata_options"]
    assert options == {"http_endpoint": "enabled", "http_tokens": "required",
                       "http_put_response_hop_limit": 1}
