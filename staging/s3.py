"""The S3 client and boto3's transfer manager as staging uses them, and S3 errors as ours.

boto3 reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_S3) itself, which is how the emulation
and the tests point it at a moto server; on Batch the job role's credentials come from the
container credentials endpoint, and the region from the environment ECS sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.manager import TransferManager

from staging.errors import BadData, StagingError
from staging.uri import S3Location

# Codes that mean "this object or bucket is not there or not yours": a retry cannot help.
# docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html (HeadObject answers a bare 403/404)
MISSING = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound"})
DENIED = frozenset({"403", "AccessDenied", "AllAccessDisabled", "InvalidObjectState",
                    "KMS.AccessDeniedException", "InvalidAccessKeyId"})
# Transfers: parts of 8 MiB above 8 MiB (boto3's defaults), 10 at a time over all files.
TRANSFER = TransferConfig(max_concurrency=10)


def client() -> Any:
    """An S3 client with the standard retry mode (throttling and 5xx retried with backoff)."""
    return boto3.session.Session().client(
        "s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def transfers(s3: Any) -> TransferManager:
    """boto3's transfer manager: multipart and ranged parts, many files at once."""
    return create_transfer_manager(s3, TRANSFER)


def error_code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def translate(err: Exception, where: str) -> StagingError:
    """An S3 error as BadData (missing, denied: named) or StagingError (anything else)."""
    if isinstance(err, ClientError):
        code = error_code(err)
        if code in MISSING:
            return BadData(f"{where}: not found ({code})")
        if code in DENIED:
            return BadData(f"{where}: access denied ({code})")
        return StagingError(f"{where}: {err}")
    return StagingError(f"{where}: {err}")


def objects(s3: Any, where: S3Location) -> Iterator[dict[str, Any]]:
    """Every object below `where` (ListObjectsV2, paginated), as S3 lists them."""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=where.bucket,
                                                                   Prefix=where.prefix):
            yield from page.get("Contents", [])
    except (ClientError, BotoCoreError) as err:
        raise translate(err, str(where)) from err
