"""The per-stack rendezvous secret: created, injected into every job, readable by one role."""

from __future__ import annotations

import json

from tests.stacks.conftest import only, resources


def _secret_arn(stack: dict) -> str:
    (key,) = stack["resource"]["aws_secretsmanager_secret"]
    return f"${{aws_secretsmanager_secret.{key}.arn}}"


def test_secret_is_random_encrypted_and_kept_out_of_state(synthesized: dict) -> None:
    secret = only(synthesized, "aws_secretsmanager_secret")
    assert secret["kms_key_id"].startswith("${aws_kms_key.encryption_key_")
    version = only(synthesized, "aws_secretsmanager_secret_version")
    assert "secret_string" not in version  # a stored argument would land in state
    assert version["secret_string_wo"] == (
        "${ephemeral.aws_secretsmanager_random_password.rendezvous_key.random_password}")
    assert version["secret_string_wo_version"] == 1
    generator = synthesized["ephemeral"]["aws_secretsmanager_random_password"]["rendezvous_key"]
    assert generator["password_length"] >= 32 and generator["exclude_punctuation"] is True


def test_every_node_gets_the_secret_by_reference(synthesized: dict) -> None:
    definition = only(synthesized, "aws_batch_job_definition", "scheduling_job_definition")
    for node_range in json.loads(definition["node_properties"])["nodeRangeProperties"]:
        container = node_range["container"]
        assert container["secrets"] == [{"name": "MNP_RENDEZVOUS_SECRET",
                                         "valueFrom": _secret_arn(synthesized)}]
        assert "MNP_RENDEZVOUS_SECRET" not in {e["name"] for e in container["environment"]}


def test_only_the_execution_role_may_read_the_secret(synthesized: dict) -> None:
    readers = []
    for key, doc in synthesized["data"]["aws_iam_policy_document"].items():
        for statement in doc["statement"]:
            if any(a.startswith("secretsmanager:") for a in statement["actions"]):
                readers.append((key, statement["actions"], statement["resources"]))
    assert readers == [("iam_execution_role_policy_doc_79F9B098",
                        ["secretsmanager:GetSecretValue"], [_secret_arn(synthesized)])]
    assert len(resources(synthesized, "aws_secretsmanager_secret_policy")) == 0


def test_the_launcher_starts_as_root_and_runs_everything_as_the_access_points_user(
        synthesized: dict) -> None:
    multi = only(synthesized, "aws_batch_job_definition", "scheduling_job_definition")
    containers = [r["container"] for r in
                  json.loads(multi["node_properties"])["nodeRangeProperties"]]
    singles = [json.loads(d["container_properties"])
               for d in resources(synthesized, "aws_batch_job_definition")
               if "container_properties" in d]
    # The staging job (the stack's own image, `python -m staging`) gets no secret to keep from
    # its programs: it runs as the image's user, which the access point maps to the same uid.
    containers += [c for c in singles if "secrets" in c]
    assert [c for c in singles if "secrets" not in c] == [
        json.loads(only(synthesized, "aws_batch_job_definition", "staging")[
            "container_properties"])]
    ap = only(synthesized, "aws_efs_access_point")["posix_user"]
    assert len(containers) == 2
    for container in containers:
        assert container["user"] == "0:0"
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["MNP_RUN_AS"] == f"{ap['uid']}:{ap['gid']}"
