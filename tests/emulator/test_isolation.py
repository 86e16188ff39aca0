"""Isolation between jobs of one stack (issue 24), in containers of the real image: a program
of one job, as the job's user, attacks another job of the same stack (the same secret, the
same EFS, one network) and fails to join it, to get a shell on it and to rewrite its
checkpoints; the victim's result is still the one-process answer."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path

import numpy as np
import pytest

from emulator.containers import ContainerJob
from emulator.engine import docker
from tests.emulator.conftest import batch_job, container_skip_reason
from tests.emulator.test_containers import COMPARED, FAST_HEARTBEAT, _heat, _reference

_WHY = container_skip_reason()
pytestmark = [pytest.mark.containers,
              pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")]

STEPS = 4000
# What a program of the attacking job tries, as that job's user, against the victim's main
# node (argv 1), its node 1 (argv 2) whose sshd listens on argv 3, for the victim job argv 4.
# It prints one JSON line of what it got.
ATTACK = r"""
import json, os, subprocess, sys
from launcher.rendezvous import Client, RendezvousError, derive_key
main_ip, node_ip, ssh_port, job = sys.argv[1:5]
found, unreadable = set(), []
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        env = open(f'/proc/{pid}/environ', 'rb').read().split(b'\0')
    except OSError as e:
        unreadable.append((int(pid), type(e).__name__))
        continue
    found |= {v.split(b'=', 1)[1].decode() for v in env
              if v.startswith(b'MNP_RENDEZVOUS_SECRET=')}
# The best key material it has: any secret it found, else its own job's checkpoint key.
tries = sorted(found) or [os.environ.get('MNP_CHECKPOINT_KEY', ''), None]
joins = []
for secret in tries:
    client = Client(key=derive_key(job, 1, secret), job=job, attempt=1, index=2, slots=1,
                    main_ip=main_ip, port=47470, hb_interval=0.5, hb_timeout=5)
    try:
        welcome = client.connect(10)
        joins.append('joined: ' + str(welcome.get('t')))
    except RendezvousError as e:
        joins.append(str(e))
    finally:
        client.close()
subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', '/tmp/k'], check=True)
shells = {}
for user in ('mpi', 'root'):
    r = subprocess.run(['ssh', '-i', '/tmp/k', '-p', ssh_port, '-o', 'BatchMode=yes',
                        '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                        '-o', 'ConnectTimeout=10', f'{user}@{node_ip}', 'id'],
                       capture_output=True, text=True, timeout=60)
    shells[user] = [r.returncode, r.stdout + r.stderr]
status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines())
print(json.dumps({'uid': os.getuid(), 'found': len(found), 'pid1': dict(unreadable).get(1),
                  'joins': joins, 'shells': shells, 'cap_eff': status['CapEff'].strip(),
                  'cap_bnd': status['CapBnd'].strip()}), flush=True)
"""

# Forges the victim's checkpoints in the job directory argv 1, the two ways a job without the
# victim's key has: its newest checkpoint rewritten (a changed field) under a plain SHA-256,
# and a newer one made from it under the attacker's own key (when it has one).
REWRITE = r"""
import json, os, shutil, sys
from pathlib import Path
import numpy as np
from solver import seal
own = os.environ.get('MNP_CHECKPOINT_KEY')
newest = sorted(Path(sys.argv[1]).glob('checkpoints/step-*/meta.json'))[-1].parent
meta = json.loads((newest / 'meta.json').read_text())
later = newest.with_name(f"step-{meta['step'] + 8:010d}")
shutil.copytree(newest, later)
done = []
for folder, key, step in ((newest, None, meta['step']),
                          (later, own and own.split(',')[0].encode(), meta['step'] + 8)):
    field = folder / 'field.npy'
    np.save(field, np.load(field) + 1.0)
    forged = {**meta, 'step': step, 't': step * meta['dt']}
    forged['seal'], _ = seal.seal(forged, str(field), key)
    (folder / 'meta.json').write_text(json.dumps(forged))
    done.append([folder.name, forged['seal'].split(':')[0]])
print(json.dumps({'forged': done}), flush=True)
"""


def _job(config: dict, scratch: Path, nodes: int, command: list[str], job_id: str,
         stack: dict[str, str], attempt: int = 1) -> ContainerJob:
    return ContainerJob(batch_job(config, nodes, command), "", efs_dir=scratch / "efs",
                        log_dir=scratch / "logs" / f"{job_id}-{attempt}", env=FAST_HEARTBEAT,
                        job_id=job_id, attempt=attempt, secret_values=stack)


def _attacker(config: dict, image: str, scratch: Path, stack: dict[str, str],
              command: list[str], name: str, victim: ContainerJob | None = None) -> dict:
    """Run `command` as a one-node job of the same stack (on the victim's network, as the
    stack's jobs share one VPC subnet); the JSON line it printed last."""
    job = _job(config, scratch, 1, command, name, stack)
    job.image = image
    with job:
        if victim is not None:
            docker("network", "connect", victim.network, job.nodes[0].pause)
        job.start()
        code = job.wait(180)
        out, err = job.output(0)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_job_cannot_join_reach_a_shell_on_or_rewrite_the_checkpoints_of_another(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    ref, ref_field = _reference(scratch, STEPS)
    stack = {"MNP_RENDEZVOUS_SECRET": secrets.token_hex(32)}  # one secret for the stack
    command = _heat(STEPS, "--log-every", "40", "--checkpoint-every", "0")
    victim = _job(synthesized_config, scratch, 3, command, "victim", stack)
    victim.image = image
    with victim:
        victim.start(skip=[2])  # node 2 is late: the main node waits for it
        _wait_for(lambda: "ready: sshd on port" in victim.output(1)[1], 120, "node 1's sshd")
        port = re.search(r"ready: sshd on port (\d+)", victim.output(1)[1]).group(1)
        got = _attacker(synthesized_config, image, scratch, stack,
                        ["python", "-c", ATTACK, victim.nodes[0].ip, victim.nodes[1].ip, port,
                         "victim"], "attacker", victim)
        assert (got["uid"], got["found"], got["pid1"]) == (1000, 0, "PermissionError"), got
        assert got["cap_eff"] == got["cap_bnd"] == "0000000000000000", got
        assert got["joins"] and all("rejected this node" in j for j in got["joins"]), got
        assert all(code == 255 and "Permission denied" in said
                   for code, said in got["shells"].values()), got
        main_err = victim.output(0)[1]
        assert "rendezvous: refused" in main_err and "node 2 reported" not in main_err
        victim.start_node(2)
        _wait_for(lambda: "step 40/" in victim.output(0)[1], 180, "the victim's run")
        victim.stop_job()  # Batch stops it; attempt 2 resumes from its checkpoint
        codes = victim.wait_all(10)
        assert codes == {0: 143, 1: 143, 2: 143}, victim.output(0)[1]
    job_dir = scratch / "efs" / "out" / "victim"
    got = _attacker(synthesized_config, image, scratch, stack,
                    ["python", "-c", REWRITE, "/mnt/efs/out/victim"], "rewriter")
    # It could write there (EFS is shared, one user), as plain and as its own key's seal.
    assert [kind for _, kind in got["forged"]] == ["sha256", "hmac-sha256"], got
    again = _job(synthesized_config, scratch, 3, command, "victim", stack, attempt=2)
    again.image = image
    with again:
        again.start()
        assert again.wait(300) == 0, again.output(0)[1]
        summary = json.loads(again.output(0)[0].strip().splitlines()[-1])
        err = again.output(0)[1]
    for name, kind in got["forged"]:
        why = "seal mismatch" if kind == "hmac-sha256" else "sealed without a key"
        assert f"skipped checkpoint /mnt/efs/out/victim/checkpoints/{name}: {why}" in err, err
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    np.testing.assert_array_equal(np.load(job_dir / "field.npy"), ref_field)
