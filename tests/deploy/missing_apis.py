"""The AWS APIs the stack uses that moto 5.2.5 lacks, answered as the AWS API reference shapes them.

Each handler takes one parsed request and returns (status, content type, body), or None when the
request is not one of its own (then moto answers it). State lives here, beside moto's backends.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

ACCOUNT = "123456789012"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
JSON_11 = {"Content-Type": "application/x-amz-json-1.1"}


@dataclass
class Call:
    """One request as the handlers see it: service, operation or path, and its parameters."""

    service: str
    method: str
    path: str
    region: str
    form: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    target: str = ""  # X-Amz-Target of the JSON protocols: "Service.Operation"

    @property
    def action(self) -> str:
        """The query protocol's Action (EC2), '' for REST calls."""
        return self.form.get("Action", "")


# (HTTP status, headers, body)
Answer = tuple[int, dict[str, str], bytes]


def _ec2_xml(action: str, inner: str) -> Answer:
    body = (f'<?xml version="1.0" encoding="UTF-8"?><{action}Response xmlns="{EC2_NS}">'
            f"<requestId>{uuid.uuid4()}</requestId>{inner}</{action}Response>")
    return 200, {"Content-Type": "text/xml"}, body.encode()


def _ec2_error(code: str, message: str) -> Answer:
    # EC2 errors: docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{uuid.uuid4()}</RequestID></Response>")
    return 400, {"Content-Type": "text/xml"}, body.encode()


def _indexed(form: dict[str, str], prefix: str) -> list[str]:
    """Query-protocol lists: Prefix.1, Prefix.2, ... in order."""
    keys = [k for k in form if re.fullmatch(rf"{re.escape(prefix)}\.\d+", k)]
    return [form[k] for k in sorted(keys, key=lambda k: int(k.rsplit(".", 1)[1]))]


def _tag_specifications(form: dict[str, str], resource_type: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for n in range(1, 20):
        if form.get(f"TagSpecification.{n}.ResourceType") != resource_type:
            continue
        for m in range(1, 60):
            key = form.get(f"TagSpecification.{n}.Tag.{m}.Key")
            if key is None:
                break
            tags[key] = form.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
    return tags


class PlacementGroups:
    """CreatePlacementGroup, DescribePlacementGroups, DeletePlacementGroup (EC2 API reference).

    A group is `available` once created and gone once deleted, as DescribePlacementGroups
    reports them (docs: AWSEC2/latest/APIReference/API_PlacementGroup.html, states
    pending | available | deleting | deleted); moto has no model for them at all.
    """

    STRATEGIES = ("cluster", "spread", "partition")

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}

    def __call__(self, call: Call) -> Answer | None:
        if call.service != "ec2":
            return None
        handler = {"CreatePlacementGroup": self.create, "DescribePlacementGroups": self.describe,
                   "DeletePlacementGroup": self.delete}.get(call.action)
        return handler(call) if handler else None

    def _xml(self, group: dict[str, Any]) -> str:
        tags = "".join(f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
                       for k, v in group["tags"].items())
        optional = "".join(f"<{k}>{group[k]}</{k}>" for k in ("partitionCount", "spreadLevel")
                           if group.get(k) is not None)
        return (f"<groupName>{escape(group['groupName'])}</groupName>"
                f"<state>available</state><strategy>{group['strategy']}</strategy>"
                f"<groupId>{group['groupId']}</groupId><groupArn>{group['groupArn']}</groupArn>"
                f"{optional}<tagSet>{tags}</tagSet>")

    def create(self, call: Call) -> Answer:
        name, strategy = call.form.get("GroupName", ""), call.form.get("Strategy", "")
        if strategy not in self.STRATEGIES:
            return _ec2_error("InvalidParameterValue", f"Invalid strategy: {strategy!r}")
        if (call.region, name) in self.groups:
            return _ec2_error("InvalidPlacementGroup.Duplicate",
                              f"The Placement Group '{name}' already exists.")
        group_id = f"pg-{uuid.uuid4().hex[:17]}"
        group = {"groupName": name, "strategy": strategy, "groupId": group_id,
                 "groupArn": f"arn:aws:ec2:{call.region}:{ACCOUNT}:placement-group/{name}",
                 "tags": _tag_specifications(call.form, "placement-group"),
                 "partitionCount": call.form.get("PartitionCount"),
                 "spreadLevel": call.form.get("SpreadLevel")}
        self.groups[(call.region, name)] = group
        return _ec2_xml("CreatePlacementGroup",
                        f"<placementGroup>{self._xml(group)}</placementGroup>")

    def describe(self, call: Call) -> Answer:
        names, ids = _indexed(call.form, "GroupName"), _indexed(call.form, "GroupId")
        found = [g for (region, _), g in self.groups.items() if region == call.region
                 and (not names or g["groupName"] in names) and (not ids or g["groupId"] in ids)]
        missing = set(names) - {g["groupName"] for g in found}
        if missing:
            return _ec2_error("InvalidPlacementGroup.Unknown",
                              f"The Placement Group '{sorted(missing)[0]}' is unknown.")
        items = "".join(f"<item>{self._xml(g)}</item>" for g in found)
        return _ec2_xml("DescribePlacementGroups",
                        f"<placementGroupSet>{items}</placementGroupSet>")

    def delete(self, call: Call) -> Answer:
        name = call.form.get("GroupName", "")
        if self.groups.pop((call.region, name), None) is None:
            return _ec2_error("InvalidPlacementGroup.Unknown",
                              f"The Placement Group '{name}' is unknown.")
        return _ec2_xml("DeletePlacementGroup", "<return>true</return>")


class EfsFileSystemExtras:
    """PutBackupPolicy, DescribeBackupPolicy and DeleteFileSystemPolicy on moto's file systems.

    PUT/GET /2015-02-01/file-systems/{FileSystemId}/backup-policy with {"BackupPolicy":
    {"Status": ...}} (docs: efs/latest/ug/API_PutBackupPolicy.html), and DELETE
    /2015-02-01/file-systems/{FileSystemId}/policy, answered 200 with no body
    (API_DeleteFileSystemPolicy.html). moto has neither the PUT nor the DELETE; its GET of a
    file system without a policy raises where AWS reports the policy DISABLED.
    """

    PATH = re.compile(r"^/2015-02-01/file-systems/(?P<id>[^/]+)/(?P<what>backup-policy|policy)$")

    def __init__(self, file_system: Callable[[str, str], Any]) -> None:
        self.file_system = file_system
        self.status: dict[str, str] = {}

    def __call__(self, call: Call) -> Answer | None:
        match = self.PATH.match(call.path)
        if call.service != "elasticfilesystem" or not match:
            return None
        if match["what"] == "policy" and call.method != "DELETE":
            return None
        fs_id = match["id"]
        file_system = self.file_system(call.region, fs_id)
        if file_system is None:
            return _json_error(404, "FileSystemNotFound", f"File system '{fs_id}' does not exist.")
        if match["what"] == "policy":
            file_system.file_system_policy = None
            return 200, {"Content-Type": "application/json"}, b""
        if call.method == "PUT":
            status = json.loads(call.body or b"{}").get("BackupPolicy", {}).get("Status")
            if status not in ("ENABLED", "DISABLED"):
                return _json_error(400, "ValidationException",
                                   f"Invalid backup policy status: {status!r}")
            self.status[fs_id] = status
        policy = {"BackupPolicy": {"Status": self.status.get(fs_id, "DISABLED")}}
        return 200, {"Content-Type": "application/json"}, json.dumps(policy).encode()


def _json_error(status: int, code: str, message: str) -> Answer:
    # EFS errors carry ErrorCode and Message (efs/latest/ug/API_FileSystemNotFound.html), and
    # the REST-JSON protocol names the error in x-amzn-ErrorType.
    body = {"ErrorCode": code, "Message": message}
    return status, {"Content-Type": "application/json", "x-amzn-ErrorType": f"{code}:"}, \
        json.dumps(body).encode()


# The emulated account's applied EC2 quotas (vCPUs) and on-demand prices (USD per hour, Linux,
# shared tenancy, us-east-1, from the public price list). A real account answers with its own.
APPLIED_QUOTAS = {"L-1216C47A": ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) "
                                 "instances", 1024.0)}
# Other services' products as (service code, attributes, unit, USD): FSx for Lustre PERSISTENT_2
# SSD at 125 MB/s/TiB, $0.145 per GB-month in us-east-1 (aws.amazon.com/fsx/lustre/pricing).
PRODUCTS = (("AmazonFSx", {"regionCode": "us-east-1", "fileSystemType": "Lustre",
                           "storageType": "SSD", "deploymentOption": "Persistent_2",
                           "throughputCapacity": "125", "productFamily": "Storage"},
             "GB-Mo", 0.145),)
PRICES = {("c6i.2xlarge", "us-east-1"): 0.34, ("c5n.18xlarge", "us-east-1"): 3.888,
          ("c6in.32xlarge", "us-east-1"): 7.2576}


class Ec2Quotas:
    """GetServiceQuota for EC2's vCPU quotas (servicequotas/2019-06-24/APIReference/
    API_GetServiceQuota.html); moto knows only VPC quotas and says NoSuchResource."""

    def __call__(self, call: Call) -> Answer | None:
        if call.target != "ServiceQuotasV20190624.GetServiceQuota":
            return None
        asked = json.loads(call.body or b"{}")
        code = asked.get("QuotaCode", "")
        if asked.get("ServiceCode") != "ec2" or code not in APPLIED_QUOTAS:
            return None
        name, value = APPLIED_QUOTAS[code]
        quota = {"ServiceCode": "ec2", "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
                 "QuotaArn": f"arn:aws:servicequotas:{call.region}:{ACCOUNT}:ec2/{code}",
                 "QuotaCode": code, "QuotaName": name, "Value": value, "Unit": "None",
                 "Adjustable": True, "GlobalQuota": False}
        return 200, JSON_11, json.dumps({"Quota": quota}).encode()


def price_list_entry(attributes: dict[str, str], unit: str, usd: float) -> str:
    """One PriceList entry of GetProducts: a JSON document in a string, one on-demand price."""
    return json.dumps({"product": {"attributes": attributes}, "terms": {"OnDemand": {"T1": {
        "priceDimensions": {"D1": {"unit": unit, "pricePerUnit": {"USD": f"{usd:.10f}"}}}}}}})


class PriceList:
    """GetProducts of the Price List API (pricing/latest/APIReference/API_pricing_GetProducts):
    each PriceList entry is a JSON document in a string; moto has no Price List API."""

    def __call__(self, call: Call) -> Answer | None:
        if call.target != "AWSPriceListService.GetProducts":
            return None
        asked = json.loads(call.body or b"{}")
        terms = {f["Field"]: f["Value"] for f in asked.get("Filters", [])}
        if asked.get("ServiceCode") == "AmazonEC2":
            price = PRICES.get((terms.get("instanceType", ""), terms.get("regionCode", "")))
            found = [] if price is None else [
                ({"instanceType": terms["instanceType"], "regionCode": terms["regionCode"]},
                 "Hrs", price)]
        else:  # TERM_MATCH: every filter equals one of the product's attributes
            found = [(attributes, unit, usd) for service, attributes, unit, usd in PRODUCTS
                     if service == asked.get("ServiceCode")
                     and all(attributes.get(k) == v for k, v in terms.items())]
        products = [price_list_entry(*product) for product in found]
        body = {"FormatVersion": "aws_v1", "PriceList": products}
        return 200, JSON_11, json.dumps(body).encode()


class FsxDataRepositoryAssociations:
    """Create-, Describe- and DeleteDataRepositoryAssociation, which moto's FSx lacks.

    Shapes from the FSx API reference: API_CreateDataRepositoryAssociation.html (answers
    {"Association": DataRepositoryAssociation}), API_DescribeDataRepositoryAssociations.html
    (AssociationIds or a file-system-id filter; {"Associations": [...]}), and
    API_DeleteDataRepositoryAssociation.html ({"AssociationId", "Lifecycle": "DELETING",
    "DeleteDataInFileSystem"}); an unknown id is DataRepositoryAssociationNotFound. Tags go to
    moto's FSx tagger, so ListTagsForResource of the association's ARN answers them.
    Associations are AVAILABLE at once and gone at once when deleted: no servers here.
    """

    PREFIX = "AWSSimbaAPIService_v20180301."

    def __init__(self, tagger: Callable[[str], Any]) -> None:
        self.tagger = tagger
        self.associations: dict[str, dict[str, Any]] = {}

    def __call__(self, call: Call) -> Answer | None:
        operation = call.target.removeprefix(self.PREFIX)
        if not call.target.startswith(self.PREFIX) or not operation.endswith(
                ("DataRepositoryAssociation", "DataRepositoryAssociations")):
            return None
        asked = json.loads(call.body or b"{}")
        handler = {"CreateDataRepositoryAssociation": self.create,
                   "DescribeDataRepositoryAssociations": self.describe,
                   "DeleteDataRepositoryAssociation": self.delete}.get(operation)
        return handler(call, asked) if handler else None

    def create(self, call: Call, asked: dict[str, Any]) -> Answer:
        association_id = f"dra-{uuid.uuid4().hex[:17]}"
        arn = (f"arn:aws:fsx:{call.region}:{ACCOUNT}:association/{asked['FileSystemId']}/"
               f"{association_id}")
        tags = asked.get("Tags", [])
        if tags:
            self.tagger(call.region).tag_resource(arn, tags)
        self.associations[association_id] = {
            "AssociationId": association_id, "ResourceARN": arn,
            "FileSystemId": asked["FileSystemId"], "Lifecycle": "AVAILABLE",
            "FileSystemPath": asked["FileSystemPath"],
            "DataRepositoryPath": asked["DataRepositoryPath"],
            "BatchImportMetaDataOnCreate": asked.get("BatchImportMetaDataOnCreate", False),
            # "The default chunk size is 1,024 MiB" (ImportedFileChunkSize).
            "ImportedFileChunkSize": asked.get("ImportedFileChunkSize", 1024),
            "S3": asked.get("S3", {}), "CreationTime": time.time()}
        return 200, JSON_11, json.dumps({"Association": self._with_tags(call, association_id)}
                                        ).encode()

    def describe(self, call: Call, asked: dict[str, Any]) -> Answer:
        wanted = asked.get("AssociationIds")
        filters = {f["Name"]: f["Values"] for f in asked.get("Filters", [])}
        missing = [a for a in wanted or [] if a not in self.associations]
        if missing:
            return _not_found(missing[0])
        found = [self._with_tags(call, a) for a, assoc in self.associations.items()
                 if (wanted is None or a in wanted) and assoc["FileSystemId"] in filters.get(
                     "file-system-id", [assoc["FileSystemId"]])]
        return 200, JSON_11, json.dumps({"Associations": found}).encode()

    def delete(self, call: Call, asked: dict[str, Any]) -> Answer:
        association_id = asked.get("AssociationId", "")
        if self.associations.pop(association_id, None) is None:
            return _not_found(association_id)
        return 200, JSON_11, json.dumps({
            "AssociationId": association_id, "Lifecycle": "DELETING",
            "DeleteDataInFileSystem": asked.get("DeleteDataInFileSystem", False)}).encode()

    def _with_tags(self, call: Call, association_id: str) -> dict[str, Any]:
        association = self.associations[association_id]
        tags = self.tagger(call.region).list_tags_for_resource(association["ResourceARN"])
        return {**association, "Tags": tags.get("Tags", [])}


def _not_found(association_id: str) -> Answer:
    # JSON 1.1 errors name their type in __type (FSx: DataRepositoryAssociationNotFound, 400).
    body = {"__type": "DataRepositoryAssociationNotFound",
            "message": f"Data repository association {association_id} not found"}
    return 400, JSON_11, json.dumps(body).encode()


class MissingApis:
    """Every handler in one place; the first whose request it is answers."""

    def __init__(self, file_system: Callable[[str, str], Any],
                 fsx_tagger: Callable[[str], Any]) -> None:
        self.lock = threading.Lock()
        self.handlers: list[Callable[[Call], Answer | None]] = [
            PlacementGroups(), EfsFileSystemExtras(file_system), Ec2Quotas(), PriceList(),
            FsxDataRepositoryAssociations(fsx_tagger)]

    def answer(self, call: Call) -> Answer | None:
        """The handlers' answer to one request, or None for moto."""
        with self.lock:
            for handler in self.handlers:
                answer = handler(call)
                if answer is not None:
                    return answer
        return None
