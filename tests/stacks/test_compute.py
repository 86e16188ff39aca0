"""The node launch template's user data, as EC2 and Batch will read it."""

from __future__ import annotations

import base64
import binascii
import email

import pytest

from stacks.compute import ECS_CONFIG, user_data
from tests.stacks.conftest import only


def _parts(encoded: str) -> list[email.message.Message]:
    archive = email.message_from_bytes(base64.b64decode(encoded, validate=True))
    assert archive.is_multipart() and archive.get_content_type() == "multipart/mixed"
    assert archive["MIME-Version"] == "1.0"
    return [part for part in archive.walk() if not part.is_multipart()]


def test_user_data_is_base64_mime_multipart_blocking_imds(synthesized: dict) -> None:
    encoded = only(synthesized, "aws_launch_template")["user_data"]
    (part,) = _parts(encoded)
    assert part.get_content_type() == "text/x-shellscript"
    script = part.get_payload(decode=True).decode()
    assert script.startswith("#!/bin/bash\n")
    ecs_config = [line for line in script.splitlines() if "/etc/ecs/ecs.config" in line]
    # That one setting and nothing a user did not ask for.
    assert ecs_config == ["echo 'ECS_AWSVPC_BLOCK_IMDS=true' >> /etc/ecs/ecs.config"]
    assert ECS_CONFIG == ("ECS_AWSVPC_BLOCK_IMDS=true",)


def test_plain_script_would_fail_the_checks() -> None:
    with pytest.raises(AssertionError):
        _parts(base64.b64encode(b"#!/bin/bash\necho hi\n").decode())
    with pytest.raises(binascii.Error):
        _parts(base64.b64decode(user_data()).decode())  # raw MIME is not base64


def test_launch_template_keeps_imdsv2_and_hop_limit(synthesized: dict) -> None:
    options = only(synthesized, "aws_launch_template")["metadata_options"]
    assert options == {"http_endpoint": "enabled", "http_tokens": "required",
                       "http_put_response_hop_limit": 1}
