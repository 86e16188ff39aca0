"""An S3 emulator (moto's server, emulator/s3/Dockerfile) in a container no port of this
machine exposes: on an internal network of its own until run-local connects it to a job's.

Tests and users seed and read it from inside its container (`docker exec`, boto3 there),
so nothing outside the engine's networks ever talks to it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from emulator import engine
from emulator.engine import EngineError, docker
from emulator.stagingjobs import S3_DOCKERFILE, S3_IMAGE, S3_PORT

# Runs inside the emulator's container: one request (JSON on stdin), one answer (stdout).
_CLIENT = """
import base64, json, sys, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:PORT", region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
req = json.load(sys.stdin)
if req["op"] == "put":
    try:
        s3.create_bucket(Bucket=req["bucket"])
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    for key, body in req["objects"].items():
        s3.put_object(Bucket=req["bucket"], Key=key, Body=base64.b64decode(body))
    print("{}")
else:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=req["bucket"],
                                                              Prefix=req["prefix"]):
        for obj in page.get("Contents", []):
            got = s3.get_object(Bucket=req["bucket"], Key=obj["Key"])
            found[obj["Key"]] = {"body": base64.b64encode(got["Body"].read()).decode(),
                                 "metadata": got.get("Metadata", {})}
    print(json.dumps(found))
""".replace("PORT", str(S3_PORT))


def build_image(tag: str = S3_IMAGE) -> str:
    """The emulator's image, on the same base as the real image's local builds."""
    return engine.build_image(tag, dockerfile=S3_DOCKERFILE)


class S3Box:
    """A running moto server named `name` (the host of its endpoint); a context manager."""

    def __init__(self, image: str = S3_IMAGE, name: str | None = None) -> None:
        self.image = image
        self.name = name or f"mnp-s3-{secrets.token_hex(3)}"
        self.network = f"{self.name}-own"

    @property
    def endpoint(self) -> str:
        """AWS_ENDPOINT_URL for containers on a network it is connected to."""
        return f"http://{self.name}:{S3_PORT}"

    def __enter__(self) -> S3Box:
        return self.start()

    def start(self) -> S3Box:
        """Its own internal network, the server on it, once it answers."""
        docker("network", "create", "--internal", self.network)
        try:
            docker("run", "-d", "--name", self.name, "--network", self.network, self.image)
            self._wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        docker("rm", "-f", self.name, check=False)
        docker("network", "rm", self.network, check=False)

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        probe = (f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{S3_PORT}/"
                 "moto-api/', timeout=2)")
        while docker("exec", self.name, "python", "-c", probe, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise EngineError(f"{self.name}: moto did not answer within {timeout:g}s: "
                                  f"{docker('logs', self.name, check=False).stderr[-500:]}")
            time.sleep(0.5)

    def _call(self, request: dict[str, Any]) -> Any:
        res = docker("exec", "-i", self.name, "python", "-c", _CLIENT,
                     input=json.dumps(request).encode())
        return json.loads(res.stdout)

    def put(self, bucket: str, objects: dict[str, bytes]) -> None:
        """Make `bucket` (if new) and store `objects` {key: bytes} in it."""
        self._call({"op": "put", "bucket": bucket, "objects": {
            k: base64.b64encode(v).decode() for k, v in objects.items()}})

    def objects(self, bucket: str, prefix: str = "") -> dict[str, tuple[bytes, dict[str, str]]]:
        """{key: (bytes, user metadata)} of every object below `prefix`."""
        found = self._call({"op": "list", "bucket": bucket, "prefix": prefix})
        return {k: (base64.b64decode(v["body"]), v["metadata"]) for k, v in found.items()}
