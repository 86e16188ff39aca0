"""Build IAM policy documents and service roles from plain statement dicts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import (
    DataAwsIamPolicyDocument,
    DataAwsIamPolicyDocumentStatement,
    DataAwsIamPolicyDocumentStatementCondition,
    DataAwsIamPolicyDocumentStatementPrincipals,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from constructs import Construct


@dataclass(frozen=True)
class Statement:
    """One policy statement; principals map a type ('Service', 'AWS') to identifiers."""

    actions: list[str]
    resources: list[str]
    effect: str = "Allow"
    principals: dict[str, list[str]] = field(default_factory=dict)
    conditions: list[tuple[str, str, list[str]]] = field(default_factory=list)  # test, var, values
    sid: str | None = None


def trust_policy(service: str) -> str:
    """A role's trust policy as plain JSON: `service` may assume it (usable under `count`,
    where a policy-document data source of a counted role's attributes is not)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}]})


def policy_document(scope: Construct, id_: str, statements: list[Statement]) -> str:
    """Render statements to a policy JSON string (resolved by Terraform at plan time)."""
    doc = DataAwsIamPolicyDocument(scope, id_, statement=[
        DataAwsIamPolicyDocumentStatement(
            sid=s.sid, effect=s.effect, actions=s.actions, resources=s.resources or None,
            principals=[DataAwsIamPolicyDocumentStatementPrincipals(type=t, identifiers=ids)
                        for t, ids in s.principals.items()] or None,
            condition=[DataAwsIamPolicyDocumentStatementCondition(test=t, variable=v, values=vals)
                       for t, v, vals in s.conditions] or None)
        for s in statements])
    return doc.json


def service_role(scope: Construct, id_: str, *, role_name: str, service: str,
                 statements: list[Statement] | None = None,
                 managed_policy_arns: list[str] | None = None,
                 tags: dict[str, str] | None = None) -> IamRole:
    """A role that one AWS service assumes, with an optional inline policy."""
    trust = policy_document(scope, f"{id_}_trust", [Statement(
        actions=["sts:AssumeRole"], resources=[], principals={"Service": [service]})])
    role = IamRole(scope, id_, name=role_name, assume_role_policy=trust, tags=tags)
    for index, arn in enumerate(managed_policy_arns or []):
        IamRolePolicyAttachment(scope, f"{id_}_managed_{index}", role=role.name, policy_arn=arn)
    if statements:
        IamRolePolicy(scope, f"{id_}_policy", name=f"{role_name}-policy", role=role.id,
                      policy=policy_document(scope, f"{id_}_policy_doc", statements))
    return role
