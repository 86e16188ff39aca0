"""Every variable the launcher reads, as one table (type, allowed values, default, meaning)
and one parser, used by every node and by the jobs CLI's `--env` alike.

A refusal names the variable, the value and what is allowed, in one line. Numbers are ASCII
(``int()`` also takes ``'١'`` and ``'1_0'``, ``float()`` takes ``'nan'``) and finite, within
bounds that keep them meaningful: a NaN heartbeat interval was a busy loop, a port above 65535
an ``OverflowError``, a PATH with a blank a broken sshd config.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from launcher import account, contract
from launcher.fabric import NETWORKS
from launcher.flavours import FLAVOURS
from launcher.inputs import DECIMAL, whole_number

PREFIX = "MNP_"
# Set by the launcher itself for what it starts (never a knob): not refused as unknown.
INTERNAL = ("MNP_SSH_CONFIG", contract.CHECKPOINT_KEY_ENV)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLANKS = " \t"


class SettingError(ValueError):
    """A variable's value is not allowed; the message names variable, value and what is."""


@dataclass(frozen=True)
class Kind:
    """How one variable's text becomes a value: `parse` raises ValueError when not `allowed`."""

    parse: Callable[[str], object]
    allowed: str


def seconds(low: float, high: float) -> Kind:
    """A finite number of seconds from `low` to `high`."""
    return number(low, high, "seconds")


def number(low: float, high: float, unit: str) -> Kind:
    """A finite number of `unit` from `low` to `high`."""
    def parse(text: str) -> float:
        if not DECIMAL.fullmatch(text):
            raise ValueError("not a number")
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("not finite")
        if not low <= value <= high:
            raise ValueError("out of range")
        return value
    return Kind(parse, f"a number of {unit} from {low:g} to {high:g} (ASCII digits)")


def whole(low: int, high: int) -> Kind:
    """A whole number from `low` to `high`."""
    def parse(text: str) -> int:
        try:
            number = whole_number(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        if not low <= number <= high:
            raise ValueError("out of range")
        return number
    return Kind(parse, f"a whole number from {low} to {high} (ASCII digits)")


def choice(values: tuple[str, ...], note: str = "") -> Kind:
    """One of `values`."""
    def parse(text: str) -> str:
        if text not in values:
            raise ValueError("unknown value")
        return text
    return Kind(parse, f"one of {', '.join(values)}{note}")


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip(_BLANKS) for n in text.split(",") if n.strip(_BLANKS))
    if not all(_NAME.fullmatch(n) for n in names):
        raise ValueError("not a list of variable names")
    return names


def _directory(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError("not an absolute path")
    if os.path.normpath(text).startswith(contract.EFS_MOUNT_PATH.rstrip("/") + "/") \
            or os.path.normpath(text) == contract.EFS_MOUNT_PATH:
        # Every job of the stack writes EFS as one user: they could read this job's keys.
        raise ValueError("on the shared file system, where every job of the stack could read "
                         "this job's ssh keys")
    return text


def _absolute(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError("not an absolute path")
    return text


def _path_list(text: str) -> str:
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("it holds a blank or control character")
    return text


def _secret(text: str) -> str:
    if len(text) < MIN_SECRET:
        raise ValueError("too short")
    return text


MIN_SECRET = 16
GANG_DIR = f"{contract.EFS_MOUNT_PATH}/.mnp/gang"
PORT = whole(1, 65535)
FLAG = Kind(lambda text: choice(("0", "1")).parse(text) == "1", "0 or 1")
# shlex's ValueError ("No closing quotation") becomes the refusal's why.
WORDS = Kind(lambda text: tuple(shlex.split(text)),
             "words split like a shell command line (quotes balanced)")


@dataclass(frozen=True)
class Knob:
    """One variable: where its value goes, how it is read, its default and what it does."""

    name: str
    field: str  # the attribute of `Values`
    kind: Kind
    default: object  # the value when unset or blank
    default_text: str  # the default as the docs say it
    help: str
    multi_node: bool = False  # read only when the job has more than one node
    keep_blank: bool = False  # a blank value is a value (MNP_MPIEXEC_ARGS="": no options)
    strip: bool = True  # surrounding blanks are not part of the value


DAY = 86400.0
# The ECS agent's default stop timeout: SIGKILL 30 s after SIGTERM (ECS_CONTAINER_STOP_TIMEOUT,
# docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs-agent-config.html).
TERM_GRACE = 30.0
KNOBS: tuple[Knob, ...] = (
    Knob(contract.RANKS_PER_NODE_ENV, "ranks_per_node",
         whole(1, contract.MAX_VCPUS_PER_NODE), None, "the node's CPU count",
         "MPI slots (ranks) per node; the job definition sets its VCPU value"),
    Knob(contract.RENDEZVOUS_TIMEOUT_ENV, "rendezvous_timeout", seconds(1, DAY), 600.0, "600",
         "seconds the main node waits for every child (and a child for the main node); "
         "the flag --rendezvous-timeout wins"),
    Knob("MNP_RENDEZVOUS_PORT", "rendezvous_port", PORT, 47470, "47470",
         "TCP port the main node's rendezvous listens on"),
    Knob("MNP_HEARTBEAT_INTERVAL", "heartbeat_interval", seconds(0.1, 3600), 5.0, "5",
         "seconds between pings on the rendezvous connection, both ways"),
    Knob("MNP_HEARTBEAT_TIMEOUT", "heartbeat_timeout", seconds(0.5, DAY), None,
         "3 x the interval, at least 30",
         "seconds of silence after which a node counts as lost (more than the interval)"),
    Knob(contract.NETWORK_ENV, "network", choice(
        tuple(NETWORKS), " (tcp: MPI's own TCP; ofi-tcp: libfabric's tcp provider; "
        "efa: Elastic Fabric Adapter, no fallback)"), "tcp", "tcp",
         "the fabric MPI must use; no silent fallback"),
    Knob("MNP_MPI", "mpi", choice(tuple(FLAVOURS)), None, "detected from mpiexec --version",
         "the MPI flavour that launches the ranks"),
    Knob("MNP_MPIEXEC_ARGS", "mpiexec_args", WORDS, None, "the flavour's defaults",
         "mpiexec options replacing the flavour's defaults (set but blank: none)",
         keep_blank=True),
    Knob(contract.PRECHECK_ENV, "precheck", FLAG, False, "0",
         "1: check every node pair's network before the run (network.json)"),
    # 120 s: mpiexec's start over ssh, then N-1 rounds of seconds at most.
    Knob("MNP_PRECHECK_TIMEOUT", "precheck_timeout", seconds(1, DAY), 120.0, "120",
         "seconds the network check may take before the attempt fails (exit 4)"),
    Knob("MNP_PRECHECK_COMMAND", "precheck_command", WORDS, None,
         "solver netcheck, else launcher.pairs", "the network check to run, one rank per node"),
    Knob(contract.RENDEZVOUS_SECRET_ENV, "secret",
         Kind(_secret, f"at least {MIN_SECRET} random characters "
                                                  "(the stack's secret has 64)"), None, "none",
         "key material of the rendezvous HMAC and the checkpoint key (the job definition's "
         "secrets); required with more than one node"),
    Knob(account.RUN_AS_ENV, "run_as", Kind(account.parse, "UID:GID of an account other than "
                                             "root, e.g. 1000:1000"), None,
         "the launcher's own user", "the account everything the launcher starts runs as; the "
         "launcher starts as root, keeps the secret, then becomes it (job isolation)"),
    Knob("MNP_INSECURE_RENDEZVOUS", "insecure_rendezvous", FLAG, False, "0",
         "1: a multi-node job without a secret (anyone reaching the port can join)"),
    Knob("MNP_SSH_PORT", "ssh_port", PORT, None, "a free port",
         "TCP port of a child's sshd", multi_node=True),
    Knob("MNP_STATE_DIR", "state_dir", Kind(_directory, "an absolute path of an existing, "
                                            "writable directory off the EFS mount"), None,
         "$TMPDIR",
         "where each node keeps its keys and configs for the attempt (removed at the end)"),
    Knob("MNP_FORWARD_ENV", "forward_env", Kind(_names, "variable names separated by commas"),
         (), "none", "more variables every rank gets from the main node"),
    Knob(contract.TERM_GRACE_ENV, "term_grace", seconds(1, 3600), TERM_GRACE, f"{TERM_GRACE:g}",
         "seconds the ranks may take after SIGTERM (to checkpoint) before the launcher kills "
         "them; keep it below the ECS agent's stop timeout (ECS_CONTAINER_STOP_TIMEOUT), "
         "after which the agent kills the container"),
    Knob("MNP_DEBUG_USR1", "debug_usr1", FLAG, False, "0",
         "1: forward SIGTERM to ranks as SIGUSR1 (for debugging the stop path)"),
    Knob(contract.GANG_ENV, "gang", FLAG, False, "0",
         "1: this Batch array job's children form one MPI world (a Spot gang: index 0 is the "
         "main node; launcher/README.md, Spot gangs)"),
    Knob("MNP_GANG_DIR", "gang_dir", Kind(_absolute, "an absolute path on the shared file "
                                          "system"), GANG_DIR, GANG_DIR,
         "where a gang's main node publishes its sealed address per job and attempt"),
    Knob("MNP_GANG_TIMEOUT", "gang_timeout", seconds(1, DAY), 600.0, "600",
         "seconds every member of a gang waits for the others before the gang gives up "
         "(exit 3)"),
    Knob("MNP_GANG_COST_CAP", "gang_cost_cap", number(0, 1e6, "dollars"), None, "none",
         "dollars the gang's waiting may cost (all members billed); with the price it "
         "shortens the wait"),
    Knob("MNP_GANG_PRICE_PER_NODE_HOUR", "gang_price", number(0, 1e4, "dollars"), None,
         "none", "the price of one member per hour (the CLI sets the Spot price)"),
    # Not the launcher's own, but it writes PATH into each child's sshd config (SetEnv,
    # which splits at blanks), where the MPI's daemons must be found.
    Knob("PATH", "path", Kind(_path_list, "directories separated by ':', without blanks"),
         None, "the image's", "where the ranks find the MPI's programs", multi_node=True,
         strip=False),
)
BY_NAME = {k.name: k for k in KNOBS}


@dataclass(frozen=True)
class Values:
    """Every knob's value, typed (None where the default depends on the node)."""

    ranks_per_node: int | None
    rendezvous_timeout: float
    rendezvous_port: int
    heartbeat_interval: float
    heartbeat_timeout: float
    network: str
    mpi: str | None
    mpiexec_args: tuple[str, ...] | None
    precheck: bool
    precheck_timeout: float
    precheck_command: tuple[str, ...] | None
    secret: str | None
    run_as: account.Account | None
    insecure_rendezvous: bool
    ssh_port: int | None
    state_dir: str | None
    forward_env: tuple[str, ...]
    term_grace: float
    debug_usr1: bool
    gang: bool
    gang_dir: str
    gang_timeout: float
    gang_cost_cap: float | None
    gang_price: float | None
    path: str | None


def refusal(name: str, raw: str, why: str, allowed: str) -> SettingError:
    """The one line refusing `name`=`raw` (a secret's value is never shown)."""
    shown = f" ({len(raw)} characters)" if name == contract.RENDEZVOUS_SECRET_ENV else f"={raw!r}"
    return SettingError(f"{name}{shown}: {why}; allowed: {allowed}")


def value(env: Mapping[str, str], name: str) -> object:
    """One knob's value from `env` (its default when unset or blank); SettingError if bad."""
    knob = BY_NAME[name]
    raw = env.get(name)
    if raw is None or (not knob.keep_blank and not raw.strip(_BLANKS)):
        return knob.default
    try:
        return knob.kind.parse(raw.strip(_BLANKS) if knob.strip else raw)
    except ValueError as e:
        raise refusal(name, raw, str(e), knob.kind.allowed) from None


def unknown(env: Mapping[str, str]) -> None:
    """Refuse an MNP_* name the launcher does not read (a typo would be silently ignored)."""
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in BY_NAME and name not in INTERNAL:
            near = difflib.get_close_matches(name, list(BY_NAME), n=1)
            hint = f"did you mean {near[0]}? " if near else ""
            raise SettingError(f"{name} is not a variable the launcher reads ({hint}see "
                               "mnp-launch --help)")


def read(env: Mapping[str, str], *, num_nodes: int = 1, here: bool = True) -> Values:
    """Every knob from `env`; SettingError names the first bad one.

    `here`: also check what only this machine can tell (that MNP_STATE_DIR exists).
    """
    unknown(env)
    found = {k.field: (value(env, k.name) if num_nodes > 1 or not k.multi_node else k.default)
             for k in KNOBS}
    interval = found["heartbeat_interval"]
    if found["heartbeat_timeout"] is None:
        found["heartbeat_timeout"] = max(30.0, 3 * interval)
    elif found["heartbeat_timeout"] <= interval:
        name = "MNP_HEARTBEAT_TIMEOUT"
        raise refusal(name, env[name], f"not more than MNP_HEARTBEAT_INTERVAL ({interval:g}), "
                      "so a node would count as lost between two pings",
                      "more than the interval")
    state = found["state_dir"]
    if here and state is not None and not (os.path.isdir(state)
                                           and os.access(state, os.W_OK | os.X_OK)):
        raise refusal("MNP_STATE_DIR", env["MNP_STATE_DIR"], "no such directory this user "
                      "can write here", BY_NAME["MNP_STATE_DIR"].kind.allowed)
    return Values(**found)


def table() -> str:
    """The knobs as a Markdown table (launcher/README.md holds this text)."""
    rows = [f"| `{k.name}` | {k.kind.allowed} | {k.default_text} | {k.help} |" for k in KNOBS]
    return "\n".join(["| variable | allowed | default | meaning |", "|---|---|---|---|", *rows])


def epilog() -> str:
    """The variables and exit codes, for `mnp-launch --help`."""
    lines = ["environment (unset or blank: the default):"]
    for k in KNOBS:
        lines.append(f"  {k.name}")
        lines.append(textwrap.fill(f"{k.help}. Allowed: {k.kind.allowed}; default: "
                                   f"{k.default_text}.", 79, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6))
    lines += ["", "exit codes:"]
    lines += [f"  {str(code):>5}  {meaning}" for code, meaning in contract.EXIT_MEANINGS.items()]
    return "\n".join(lines)
