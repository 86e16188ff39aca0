"""The one settings table: every refusal names variable, value and what is allowed; the
launcher exits 2 on it in one line; the docs and `--help` are the table."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import contract, settings, sshd
from launcher.rendezvous import Peer

REPO = Path(__file__).resolve().parents[2]
SECRET = "0123456789abcdef0123456789abcdef"
MAIN = {"AWS_BATCH_JOB_ID": "abc#0", "AWS_BATCH_JOB_NODE_INDEX": "0",
        "AWS_BATCH_JOB_NUM_NODES": "3", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "MNP_RENDEZVOUS_SECRET": SECRET}

# (variable, value, why): what issue 24 found accepted (each then failed on the nodes: a
# ValueError in the reader threads, a busy ping loop, a main node that never gave up, an
# OverflowError, a traceback, a broken sshd config), and the spellings int()/float() take.
FOUND_IN_ISSUE_24 = [
    ("MNP_HEARTBEAT_TIMEOUT", "nan", "not a number"),
    ("MNP_HEARTBEAT_INTERVAL", "nan", "not a number"),
    ("MNP_HEARTBEAT_INTERVAL", "inf", "not a number"),
    ("MNP_HEARTBEAT_INTERVAL", "0", "out of range"),
    ("MNP_RENDEZVOUS_TIMEOUT", "nan", "not a number"),
    ("MNP_RENDEZVOUS_TIMEOUT", "1e999", "not finite"),
    ("MNP_RENDEZVOUS_TIMEOUT", "-1", "out of range"),
    ("MNP_RENDEZVOUS_TIMEOUT", "+600", "not a number"),
    ("MNP_RENDEZVOUS_PORT", "99999", "out of range"),
    ("MNP_SSH_PORT", "abc", "not a whole number"),
    ("MNP_SSH_PORT", "70000", "out of range"),
    ("MNP_STATE_DIR", "state", "not an absolute path"),
    ("MNP_STATE_DIR", "/mnt/efs/state", "on the shared file system, where every job of the "
     "stack could read this job's ssh keys"),
    ("MNP_STATE_DIR", "/mnt/efs/", "on the shared file system, where every job of the stack "
     "could read this job's ssh keys"),
    ("MNP_MPI", "foo", "unknown value"),
    ("MNP_RANKS_PER_NODE", "2000000", "out of range"),
    ("MNP_RANKS_PER_NODE", "\u0661", "not a whole number"),  # ARABIC-INDIC DIGIT ONE
    ("MNP_RANKS_PER_NODE", "1_0", "not a whole number"),
    ("MNP_PRECHECK_TIMEOUT", "nan", "not a number"),
    ("MNP_PRECHECK_COMMAND", "netcheck --sizes '8", "No closing quotation"),
    ("MNP_FORWARD_ENV", "A,B-C", "not a list of variable names"),
    ("PATH", "/opt/my tools/bin:/usr/bin", "it holds a blank or control character"),
]
IDS = [f"{n}={v}" for n, v, _ in FOUND_IN_ISSUE_24]


@pytest.mark.parametrize(("name", "value", "why"), FOUND_IN_ISSUE_24, ids=IDS)
def test_a_refusal_names_the_variable_its_value_and_what_is_allowed(name: str, value: str,
                                                                    why: str) -> None:
    with pytest.raises(settings.SettingError) as caught:
        settings.read({name: value}, num_nodes=2)
    assert str(caught.value) == (f"{name}={value!r}: {why}; allowed: "
                                 f"{settings.BY_NAME[name].kind.allowed}")


def _launcher(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "MNP_"))}
    return subprocess.run([sys.executable, "-m", "launcher", *args],
                          env={**base, "PYTHONPATH": str(REPO), **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("name", "value", "why"), FOUND_IN_ISSUE_24, ids=IDS)
def test_the_main_node_exits_2_in_one_line_starting_nothing(tmp_path: Path, name: str,
                                                           value: str, why: str) -> None:
    env = {**MAIN, "MNP_STATE_DIR": str(tmp_path), name: value}
    if name == "PATH":  # the launcher's own Python must still be found
        env[name] = f"{Path(sys.executable).parent}:{value}"
    run = _launcher(["true"], **env)
    assert run.returncode == contract.USAGE, run.stderr
    assert run.stderr.startswith(f"mnp-launch: error: {name}=") and why in run.stderr
    assert run.stderr.count("\n") == 1 and run.stdout == ""
    if name != "MNP_STATE_DIR":
        assert list(tmp_path.iterdir()) == []  # no key, no state


def test_a_state_dir_that_does_not_exist_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    run = _launcher(["true"], **MAIN, MNP_STATE_DIR=str(tmp_path / "nonexistent"))
    assert run.returncode == contract.USAGE
    assert run.stderr == (f"mnp-launch: error: MNP_STATE_DIR='{tmp_path}/nonexistent': no such "
                          "directory this user can write here; allowed: an absolute path of "
                          "an existing, writable directory off the EFS mount\n")


def test_the_secret_is_refused_without_showing_it() -> None:
    with pytest.raises(settings.SettingError) as caught:
        settings.read({"MNP_RENDEZVOUS_SECRET": "hunter2hunter2"}, num_nodes=2)
    assert str(caught.value).startswith("MNP_RENDEZVOUS_SECRET (14 characters): too short")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("env", "field", "expected"), [
    ({"MNP_SSH_PORT": "22"}, "ssh_port", 22),
    ({"MNP_SSH_PORT": "65535"}, "ssh_port", 65535),
    ({"MNP_RENDEZVOUS_PORT": "1"}, "rendezvous_port", 1),
    ({"MNP_RENDEZVOUS_TIMEOUT": "1e3"}, "rendezvous_timeout", 1000.0),
    ({"MNP_RENDEZVOUS_TIMEOUT": " 86400 "}, "rendezvous_timeout", 86400.0),
    ({"MNP_RANKS_PER_NODE": "896"}, "ranks_per_node", 896),
    ({"MNP_RANKS_PER_NODE": ""}, "ranks_per_node", None),  # blank: the default
    ({"MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "0.6"}, "heartbeat_timeout",
     0.6),
    ({"MNP_HEARTBEAT_INTERVAL": "20"}, "heartbeat_timeout", 60.0),
    ({"MNP_HEARTBEAT_INTERVAL": ".5"}, "heartbeat_timeout", 30.0),
    ({"MNP_PRECHECK": "1"}, "precheck", True),
    ({"MNP_PRECHECK_COMMAND": "  "}, "precheck_command", None),
    ({"MNP_MPIEXEC_ARGS": ""}, "mpiexec_args", ()),  # set but blank: no options at all
    ({"MNP_FORWARD_ENV": "A, B,,C_1"}, "forward_env", ("A", "B", "C_1")),
    ({"MNP_MPI": "openmpi4"}, "mpi", "openmpi4"),
    ({}, "term_grace", 30.0),  # the ECS agent's default stop timeout
    ({"MNP_TERM_GRACE": "80"}, "term_grace", 80.0),  # the Spot job definition's
    ({"MNP_TERM_GRACE": "1"}, "term_grace", 1.0),
    ({"MNP_SSH_CONFIG": "/x"}, "ssh_port", None),  # the launcher's own, not refused
])
def test_allowed_values_are_read_typed(env: dict, field: str, expected: object) -> None:
    assert getattr(settings.read(env, num_nodes=2), field) == expected


@pytest.mark.parametrize(("value", "why"), [("0", "out of range"), ("3601", "out of range"),
                                            ("nan", "not a number"), ("90s", "not a number")])
def test_a_term_grace_outside_1_to_3600_seconds_is_refused(value: str, why: str) -> None:
    # 0 would kill the ranks at once, leaving no time to checkpoint; "90s" is the agent's
    # spelling (ECS_CONTAINER_STOP_TIMEOUT), not the launcher's.
    with pytest.raises(settings.SettingError) as caught:
        settings.read({"MNP_TERM_GRACE": value})
    assert str(caught.value) == (f"MNP_TERM_GRACE={value!r}: {why}; allowed: a number of "
                                 "seconds from 1 to 3600 (ASCII digits)")


def test_the_launcher_gets_the_term_grace_from_the_setting() -> None:
    from launcher.node import Settings
    assert Settings.from_env({"MNP_TERM_GRACE": "80"}, None).term_grace == 80.0
    assert Settings.from_env({}, None).term_grace == settings.TERM_GRACE == 30.0


def test_a_heartbeat_timeout_not_above_the_interval_is_refused() -> None:
    with pytest.raises(settings.SettingError, match=r"^MNP_HEARTBEAT_TIMEOUT='5': not more "
                       r"than MNP_HEARTBEAT_INTERVAL \(5\)"):
        settings.read({"MNP_HEARTBEAT_INTERVAL": "5", "MNP_HEARTBEAT_TIMEOUT": "5"})


def test_a_misspelt_variable_is_refused_with_the_name_it_resembles() -> None:
    with pytest.raises(settings.SettingError, match=r"^MNP_RANK_PER_NODE is not a variable "
                       r"the launcher reads \(did you mean MNP_RANKS_PER_NODE\?"):
        settings.read({"MNP_RANK_PER_NODE": "4"})


def test_one_node_ignores_what_only_several_nodes_use() -> None:
    # A laptop's PATH may hold blanks (WSL: /mnt/c/Program Files/...); no sshd reads it there.
    env = {"PATH": "/mnt/c/Program Files/x:/usr/bin", "MNP_SSH_PORT": "22"}
    assert settings.read(env).path is None
    with pytest.raises(settings.SettingError, match="^PATH="):
        settings.read(env, num_nodes=2)


def test_every_knob_has_one_typed_field_and_every_field_a_knob() -> None:
    assert [k.field for k in settings.KNOBS] == [f.name for f in dataclasses.fields(
        settings.Values)]
    assert all(k.name.startswith("MNP_") or k.name == "PATH" for k in settings.KNOBS)


def test_the_readme_table_is_the_settings_table() -> None:
    readme = (REPO / "launcher" / "README.md").read_text()
    assert settings.table() in readme, "regenerate: python -c 'from launcher import " \
        "settings; print(settings.table())'"


def test_help_lists_every_variable_and_exit_code() -> None:
    run = _launcher(["--help"])
    assert run.returncode == 0
    for knob in settings.KNOBS:
        assert f"\n  {knob.name}\n" in run.stdout
    for code in contract.EXIT_MEANINGS:
        assert f"  {code!s:>5}  " in run.stdout


def test_the_rendezvous_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = taken.getsockname()[1]
        run = _launcher(["true"], **MAIN, MNP_RENDEZVOUS_PORT=str(port), MNP_MPI="openmpi5",
                        MNP_STATE_DIR=str(tmp_path))
    assert run.returncode == contract.USAGE, run.stderr
    assert "Traceback" not in run.stderr
    assert (f"ERROR cannot listen for the children on port {port} (MNP_RENDEZVOUS_PORT): "
            "Address already in use") in run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("port", "host"), [(22, "10.0.1.7"), (2222, "[10.0.1.7]:2222")])
def test_known_hosts_names_the_host_as_ssh_looks_it_up(tmp_path: Path, port: int,
                                                       host: str) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostHostHostHostHostHostHostHostHostHost"
    peer = Peer(1, "10.0.1.7", 1, port, f"{key} mnp-host")
    sshd.write_ssh_client(tmp_path, tmp_path / "id_ed25519", [peer])
    assert (tmp_path / "known_hosts").read_text() == f"{host} {key}\n"
    # ssh-keygen -F finds a host the way ssh does: port 22 is the plain address.
    found = subprocess.run(["ssh-keygen", "-F", host, "-f", str(tmp_path / "known_hosts")],
                           capture_output=True, text=True)
    assert found.returncode == 0 and key in found.stdout
