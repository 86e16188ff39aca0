"""The launcher's three paths: one node, the main node, a child node."""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from launcher import contract, fabric, gang, gate, netif, procs, sshd
from launcher.flavours import Flavour
from launcher.rendezvous import (
    HANDSHAKE_TIMEOUT,
    SECRET_ENV,
    Client,
    Peer,
    RendezvousError,
    derive_key,
    log,
    without_secret,
)
from launcher.server import NodeFailed, Server
from launcher.settings import value as read_knob

if TYPE_CHECKING:
    from launcher.node import BatchNode, Settings

LOSS_GRACE = 2.0  # after mpiexec fails, how long a lost node may take to show up as lost
# Forwarded to every rank (mpiexec -x) when set: which job and attempt, where data lives.
FORWARD_ENV = ("AWS_BATCH_JOB_ID", "AWS_BATCH_JOB_ATTEMPT", "AWS_BATCH_JOB_NUM_NODES",
               "INPUT_PATH", "OUTPUT_PATH", "NUMBA_CACHE_DIR", "PATH", "PYTHONPATH",
               "VIRTUAL_ENV", contract.CHECKPOINT_KEY_ENV)


class TermSignal:
    """Records SIGTERM; the run loops forward it to the local ranks and kill them `grace`
    seconds later (MNP_TERM_GRACE)."""

    def __init__(self, grace: float) -> None:
        self.event = threading.Event()
        self.at = 0.0
        self.grace = grace
        signal.signal(signal.SIGTERM, self._on)

    def _on(self, *_: object) -> None:
        if not self.event.is_set():
            self.at = time.monotonic()
            log.info("SIGTERM: forwarding to local ranks")
        self.event.set()


def _forward_term(root: int) -> None:
    ranks = procs.rank_pids(root)
    debug = read_knob(os.environ, "MNP_DEBUG_USR1")
    procs.signal_pids(ranks, signal.SIGUSR1 if debug else signal.SIGTERM)
    log.info("SIGTERM sent to %d local rank(s): %s", len(ranks),
             ", ".join(f"{p} ({procs.comm(p)})" for p in ranks))


def mpiexec() -> str:
    """The `mpiexec` on PATH, else the one next to this Python (a venv's MPI wheel)."""
    return shutil.which("mpiexec") or str(Path(sys.executable).with_name("mpiexec"))


def forward_names(env: Mapping[str, str]) -> list[str]:
    """The variables every rank gets from the launcher: FORWARD_ENV, the definition's MPI and
    fabric tuning (FI_*, OMPI_MCA_*, UCX_*, MPIR_CVAR_*: sshd starts remote ranks with a clean
    environment) and MNP_FORWARD_ENV."""
    names = [n for n in FORWARD_ENV if n in env] + fabric.forwarded(env)
    listed: tuple[str, ...] = read_knob(env, "MNP_FORWARD_ENV")  # type: ignore[assignment]
    names += [n for n in listed if n in env and n not in names]
    return [n for n in names if n != SECRET_ENV]


def world_argv(flavour: Flavour, mpiexec_path: str, hosts: list[tuple[str, int]], state: Path,
               agent: Path, settings: Settings, cmd: list[str],
               forcing: fabric.Forcing | None = None,
               hostfile_name: str = "hostfile") -> list[str]:
    """Write the hostfile for `hosts` (main first) and return the multi-node mpiexec argv."""
    forcing = forcing or fabric.Forcing()
    hostfile = state / hostfile_name
    hostfile.write_text(flavour.hostfile(hosts))
    total = sum(n for _, n in hosts)
    return [*flavour.world(mpiexec_path, str(hostfile), total, str(agent),
                           [ip for ip, _ in hosts]),
            *flavour.extra_args(settings.mpiexec_args), *forcing.args,
            *flavour.forward(forward_names({**os.environ, **forcing.env})), *cmd]


def _supervise(proc: subprocess.Popen[bytes], term: TermSignal,
               lost: Server | None = None) -> tuple[int, str | None]:
    """Wait for mpiexec; forward SIGTERM to its ranks; kill it if a node is lost."""
    forwarded = False
    while True:
        rc = proc.poll()
        if rc is not None:
            return rc, None
        if term.event.is_set():
            if not forwarded:
                _forward_term(os.getpid())
                forwarded = True
            if time.monotonic() - term.at > term.grace:
                procs.kill_tree(proc.pid)
                proc.wait()
                return contract.STOPPED, None
        if lost is not None and not lost.lost.empty():
            index, why = lost.lost.get()
            if term.event.is_set():
                # Batch stops every node at once: a child whose ranks ended first is not lost.
                log.info("node %d left during the stop (%s)", index, why)
                continue
            reason = f"node {index} lost mid-run ({why})"
            log.error("%s: stopping mpiexec", reason)
            _stop(proc)
            return contract.NODE_LOST, reason
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM mpiexec, then SIGKILL it and its local ranks: a silent peer can hang it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass
    procs.kill_tree(proc.pid)
    proc.wait()


def _exit_code(rc: int) -> int:
    """mpiexec's code, except that a rank killed by a signal (not SIGTERM) is a lost node."""
    if 128 < rc <= 128 + 64 and rc != contract.STOPPED:
        log.error("a rank was killed by signal %d: treating it as a lost node", rc - 128)
        return contract.NODE_LOST
    return rc


def state_dir(node: BatchNode, parent: str | None) -> Path:
    """A 0700 directory for this job, attempt and node under `parent` (MNP_STATE_DIR, else
    $TMPDIR); removed when the launcher ends."""
    return Path(tempfile.mkdtemp(prefix=f"mnp-{node.job}-a{node.attempt}-n{node.index}-",
                                 dir=parent))


def _fabric(node: BatchNode, settings: Settings, flavour: Flavour,
            mpiexec_path: str) -> fabric.Forcing | int:
    """MNP_NETWORK's forcing once this node passed its own check, else the exit code."""
    try:
        return fabric.prepare(node.index, settings.network, flavour.name,
                              settings.mpiexec_args, mpiexec_path)
    except fabric.FabricError as e:
        log.error("%s", e)
        return contract.USAGE
    except fabric.Unusable as e:
        log.error("%s", e)
        return contract.NODE_LOST


def run_local(node: BatchNode, settings: Settings, cmd: list[str], term: TermSignal,
              flavour: Flavour, mpiexec_path: str) -> int:
    """One node: the command under a local mpiexec with `slots` ranks."""
    forcing = _fabric(node, settings, flavour, mpiexec_path)
    if isinstance(forcing, int):
        return forcing
    try:
        if gate.requested(os.environ):
            log.info("%s=1: one node, so no pair of nodes to check", gate.PRECHECK_ENV)
    except gate.GateError as e:
        log.error("%s", e)
        return contract.USAGE
    argv = [*flavour.local(mpiexec_path, settings.slots),
            *flavour.extra_args(settings.mpiexec_args), *forcing.args, *cmd]
    log.info("single node: %d ranks: %s", settings.slots, shlex.join(cmd))
    try:
        proc = subprocess.Popen(argv, start_new_session=True,
                                env={**without_secret(os.environ), **forcing.env})
    except OSError as e:
        log.error("cannot start mpiexec: %s", e)
        return contract.USAGE
    rc, _ = _supervise(proc, term)
    log.info("mpiexec exited with %d", rc)
    return _exit_code(rc)


def _peers_installed(server: Server) -> bool:
    """Spawn tree: have every child admit every child's key; False if one could not."""
    began = time.monotonic()
    unusable = server.share_peers(HANDSHAKE_TIMEOUT)
    if unusable:
        log.error("node(s) %s did not install their peers' keys: unusable",
                  ", ".join(map(str, unusable)))
        return False
    log.info("spawn tree: every node admits the %d children's keys (%.2fs)",
             len(server.peers), time.monotonic() - began)
    return True


@dataclass
class _World:
    """What every mpiexec across the job's nodes shares: the user's command's and the gate's."""

    flavour: Flavour
    mpiexec_path: str
    hosts: list[tuple[str, int]]  # (address, slots), main node first
    order: list[int]  # the Batch node index of each host
    state: Path
    settings: Settings
    forcing: fabric.Forcing
    env: dict[str, str]

    def argv(self, cmd: list[str], *, one_rank_each: bool = False) -> list[str]:
        hosts = [(ip, 1) for ip, _ in self.hosts] if one_rank_each else self.hosts
        return world_argv(self.flavour, self.mpiexec_path, hosts, self.state, sshd.AGENT,
                          self.settings, cmd, self.forcing,
                          "precheck-hostfile" if one_rank_each else "hostfile")


def run_main(node: BatchNode, settings: Settings, cmd: list[str], term: TermSignal,
             flavour: Flavour, mpiexec_path: str) -> int:
    """Main node: admit the children, run mpiexec across all nodes, then dismiss them."""
    forcing = _fabric(node, settings, flavour, mpiexec_path)
    if isinstance(forcing, int):
        return forcing  # Batch ends the job, children included, when the main node exits
    try:
        check = gate.Check.configured(os.environ)
    except gate.GateError as e:
        log.error("%s", e)
        return contract.USAGE
    if node.gang and gang.withdrawn(node, settings):
        return contract.RENDEZVOUS_TIMEOUT  # a member gave up on this attempt before we came
    state = state_dir(node, settings.state_dir)
    server: Server | None = None
    published: Path | None = None
    # Why the world never assembled (then members that start later must not wait for it).
    unassembled: str | None = None
    try:
        key = state / "id_ed25519"
        try:
            server = _serve(node, settings, key)
            if node.gang:
                published = gang.announce(node, settings, server.port)
        except RendezvousError as e:
            log.error("%s", e)
            return contract.USAGE
        peers = _admit(server, settings, flavour, term, node)
        if isinstance(peers, tuple):
            unassembled = peers[1] or (f"the main node ended with exit {peers[0]} before the "
                                       "gang assembled")
            server.finish(peers[0], why=peers[1])
            return peers[0]
        hosts = [(server.local_ip, settings.slots)]
        hosts += [(peers[i].ip, peers[i].slots) for i in sorted(peers)]
        config = sshd.write_ssh_client(state, key, peers.values())
        # The main node's ranks inherit mpiexec's environment; children's come from their sshd.
        env = {**without_secret(os.environ), **forcing.env,
               **netif.rank_env(hosts[0][0], os.environ, ofi_tcp=settings.network.ofi_tcp),
               sshd.CONFIG_ENV: str(config)}
        world = _World(flavour, mpiexec_path, hosts, [node.main_index, *sorted(peers)], state,
                       settings, forcing, env)
        code = contract.OK if check is None else _precheck(check, node, world, term, server)
        if code == contract.OK:
            code = _run_world(world, cmd, term, server)
        server.finish(code)
        return code
    finally:
        if server is not None:
            server.close()
        if published is not None and unassembled is not None:
            gang.give_up(node, settings, unassembled)
        elif published is not None:
            gang.withdraw(published)
        shutil.rmtree(state, ignore_errors=True)


def _serve(node: BatchNode, settings: Settings, key: Path) -> Server:
    """The rendezvous server this attempt's children report to, listening."""
    public = sshd.keygen(key, f"mnp-{node.job}-attempt{node.attempt}")
    children = set(range(node.num_nodes)) - {node.main_index}
    try:
        server = Server(key=derive_key(node.job, node.attempt, settings.secret), job=node.job,
                        attempt=node.attempt, expected=children, public_key=public,
                        user=sshd.user_name(), hb_interval=settings.hb_interval,
                        hb_timeout=settings.hb_timeout, port=settings.port)
    except OSError as e:  # the port is taken, or not ours to bind
        raise RendezvousError(f"cannot listen for the children on port {settings.port} "
                              f"(MNP_RENDEZVOUS_PORT): {e.strerror or e}") from None
    server.start()
    log.info("main node: waiting up to %gs for %d children on port %d",
             settings.rendezvous_timeout, len(children), server.port)
    return server


def _admit(server: Server, settings: Settings, flavour: Flavour, term: TermSignal,
           node: BatchNode) -> dict[int, Peer] | tuple[int, str | None]:
    """Every child ready (and, for a spawn tree, holding its peers' keys), else the exit code
    and the line the children are told."""
    started = time.monotonic()
    try:
        peers = server.wait_ready(settings.rendezvous_timeout, stop=term.event)
    except NodeFailed as e:
        retry = ", retryable" if e.code in contract.RETRYABLE else ""
        log.error("%s: ending the job (exit %d%s)", e, e.code, retry)
        return e.code, None
    except RendezvousError as e:
        log.error("%s", e)
        if term.event.is_set():
            return contract.STOPPED, None
        why = None
        if settings.gang_bound is not None:
            missing = sorted(server.expected - set(server.peers))
            why = gang.missing_line(missing, settings.gang_bound, node.num_nodes)
            log.error("%s", why)
        return contract.RENDEZVOUS_TIMEOUT, why
    if not server.lost.empty():
        index, why = server.lost.get()
        log.error("node %d lost before the run (%s)", index, why)
        return contract.NODE_LOST, None
    if flavour.tree_spawn and not _peers_installed(server):
        return contract.NODE_LOST, None
    log.info("all %d nodes ready after %.1fs", len(peers) + 1, time.monotonic() - started)
    return peers


def _run_world(world: _World, cmd: list[str], term: TermSignal, server: Server) -> int:
    """The user's command across every node; the job's exit code."""
    argv = world.argv(cmd)
    log.info("%s mpiexec with %d ranks: %s", world.flavour.name,
             sum(n for _, n in world.hosts), shlex.join(cmd))
    log.info("transport settings: %s", gate.transport_settings(argv, world.env))
    try:
        proc = subprocess.Popen(argv, start_new_session=True, env=world.env)
    except OSError as e:
        log.error("cannot start mpiexec: %s", e)
        return contract.USAGE
    rc, reason = _supervise(proc, term, server)
    code = rc
    if term.event.is_set():
        # PRRTE may end with 0 even after losing a daemon that the stop took down.
        code = contract.STOPPED
    elif reason is None:
        # A dead child may have brought mpiexec down (even with exit 0) before its loss
        # was noticed: every child must still answer.
        lost = server.confirm_alive(LOSS_GRACE)
        for index, why in lost:
            log.error("node %d lost mid-run (%s)", index, why)
        code = contract.NODE_LOST if lost else _exit_code(rc)
    log.info("mpiexec ended (%d); job exit code %d; dismissing children", rc, code)
    return code


def _precheck(check: gate.Check, node: BatchNode, world: _World, term: TermSignal,
              server: Server) -> int:
    """The MNP_PRECHECK gate: the check across the same nodes, one rank each (0 goes on)."""
    nodes = [gate.NodeRef(world.order[k], ip) for k, (ip, _) in enumerate(world.hosts)]
    argv = world.argv(check.command_for(nodes), one_rank_each=True)
    log.info("transport settings (network check): %s", gate.transport_settings(argv, world.env))
    code = check.run(argv, world.env, lambda proc: _supervise(proc, term, server), nodes,
                     node.job)
    return contract.STOPPED if term.event.is_set() else code


def run_child(node: BatchNode, settings: Settings, term: TermSignal) -> int:
    """Child node: report to the main node, serve its remote starts until told to exit."""
    if node.gang:
        joined = gang.join(node, settings, term.event)
        if isinstance(joined, int):
            return joined
        node, settings = joined
    state = state_dir(node, settings.state_dir)
    assert node.main_ip is not None
    client = Client(key=derive_key(node.job, node.attempt, settings.secret), job=node.job,
                    attempt=node.attempt, index=node.index, slots=settings.slots,
                    main_ip=node.main_ip, port=settings.port,
                    hb_interval=settings.hb_interval, hb_timeout=settings.hb_timeout)
    try:
        log.info("child node: reporting %d slots to %s:%d", settings.slots, node.main_ip,
                 settings.port)
        missing = fabric.check(settings.network, mpiexec())
        try:
            welcome = client.connect(settings.rendezvous_timeout, stop=term.event)
        except RendezvousError as e:
            log.error("%s", e)
            if missing:
                return _unfit(node, settings, missing, None)
            return contract.STOPPED if term.event.is_set() else contract.RENDEZVOUS_TIMEOUT
        if missing:
            return _unfit(node, settings, missing, client)
        main_key = str(welcome["public_key"])
        try:
            port, host_key, public = _serve_ssh(node, settings, state, main_key)
        except Exception as e:  # the main node waits for this node: it must hear why not
            why = str(e) or type(e).__name__
            log.error("%s", why)
            client.fail(contract.APPLICATION_ERROR, why)
            return contract.APPLICATION_ERROR
        client.on_peers = lambda peers: sshd.join_peers(state, main_key, peers)
        client.ready(port, host_key, public)
        log.info("ready: sshd on port %d admits only this attempt's keys", port)
        return _follow(client, term, in_gang=node.gang)
    finally:
        client.close()
        shutil.rmtree(state, ignore_errors=True)


def _serve_ssh(node: BatchNode, settings: Settings, state: Path,
               main_key: str) -> tuple[int, str, str]:
    """Start this child's sshd for the main node's key: its port, host key, own public key."""
    assert node.main_ip is not None
    port = settings.ssh_port or sshd.free_port()
    ip = netif.source_address(node.main_ip, settings.port)
    own = netif.rank_env(ip, os.environ, ofi_tcp=settings.network.ofi_tcp)
    # This node's own attempt key: its daemons start others' in a spawn tree.
    public = sshd.keygen(state / "id_ed25519",
                         f"mnp-{node.job}-attempt{node.attempt}-node{node.index}")
    _, host_key = sshd.start_sshd(state, port, main_key, os.environ.get("PATH", os.defpath),
                                  own)
    return port, host_key, public


def _unfit(node: BatchNode, settings: Settings, missing: str, client: Client | None) -> int:
    """Log the one line saying what this child lacks, tell the main node, exit node-lost."""
    assert node.main_ip is not None
    line = fabric.unusable(node.index, netif.source_address(node.main_ip, settings.port),
                           socket.gethostname(), settings.network.name, missing)
    log.error("%s", line)
    if client is not None:
        client.unfit(line)
    return contract.NODE_LOST


def _follow(client: Client, term: TermSignal, in_gang: bool = False) -> int:
    """Serve until the main node says exit or goes silent; on SIGTERM let ranks finish.

    A gang member is a Batch job of its own: it ends with the world's code, so the array's
    children all fail (or succeed) together."""
    forwarded_at: float | None = None
    while True:
        if term.event.is_set():
            if forwarded_at is None:
                _forward_term(os.getpid())
                forwarded_at = time.monotonic()
            ranks = procs.rank_pids(os.getpid())
            waited = time.monotonic() - forwarded_at
            # sshd stays up while ranks checkpoint; then a short wait for the main's word.
            if waited > term.grace or (not ranks and waited > 5):
                log.info("SIGTERM: local ranks ended; exiting")
                return contract.STOPPED
        try:
            kind, value = client.events.get(timeout=0.2)
        except queue.Empty:
            continue
        if kind == "exit":
            if client.why:
                log.error("main node: %s", client.why)
            log.info("main node ended the job with %s; exiting", value)
            if term.event.is_set():
                return contract.STOPPED
            return int(value) if in_gang else 0  # type: ignore[call-overload]
        log.error("main node lost (%s): stopping local ranks", value)
        return contract.NODE_LOST
