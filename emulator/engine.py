"""The local container engine: start it when missing, make a base image, build ours.

No image registry is reachable from our machines, so the official Python base image is
replaced by a Debian bookworm made with debootstrap and imported once; it stays in the
engine's store, so later runs only build on it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = "mnp-base:bookworm"
IMAGE = "mnp-solver:local"
DOCKERFILE = REPO / "image" / "Dockerfile"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = "python3,python3-venv,python3-pip,python-is-python3,ca-certificates"
ENGINE_LOG = Path(tempfile.gettempdir()) / "mnp-dockerd.log"
CONTEXT_LABEL = "mnp.context"  # the content digest of the sources an image was built from


class EngineError(RuntimeError):
    """The engine is missing, will not start, or a build failed (message says which)."""


def docker(*args: str, check: bool = True, timeout: float | None = 120,
           input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`, capturing text output; EngineError carries stderr on failure."""
    try:
        res = subprocess.run(["docker", *args], capture_output=True, text=input is None,
                             check=False, timeout=timeout, input=input)
    except FileNotFoundError:
        raise EngineError("the docker CLI is not installed (apt-get install docker.io)") from None
    if check and res.returncode != 0:
        err = res.stderr if isinstance(res.stderr, str) else res.stderr.decode(errors="replace")
        raise EngineError(f"docker {' '.join(args[:2])} failed: {err.strip()[-2000:]}")
    return res


def _running() -> bool:
    return shutil.which("docker") is not None and docker(
        "info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0


def unavailable_reason() -> str | None:
    """Why no engine can be used here (None when one runs or can be started)."""
    if shutil.which("docker") is None:
        return "no docker CLI (apt-get install docker.io)"
    if _running():
        return None
    if os.geteuid() != 0:
        return "the Docker engine is not running and only root can start it"
    if shutil.which("dockerd") is None:
        return "the Docker engine is not installed (apt-get install docker.io)"
    return None


def ensure_running(timeout: float = 60) -> None:
    """Start dockerd (as root) when it is not running, and wait until it answers."""
    reason = unavailable_reason()
    if reason:
        raise EngineError(reason)
    if _running():
        return
    with open(ENGINE_LOG, "ab") as log:
        subprocess.Popen(["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _running():
            return
        time.sleep(0.5)
    raise EngineError(f"dockerd did not answer within {timeout:g}s (log: {ENGINE_LOG})")


def image_exists(name: str) -> bool:
    """Whether the engine's store holds `name`."""
    return docker("image", "inspect", name, check=False).returncode == 0


def apt_mirror(suite: str = "bookworm") -> str | None:
    """The Debian mirror this machine's apt uses for `suite` (None: debootstrap's default)."""
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in path.read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines()
                          if ":" in line and not line.startswith("#"))
            if suite in fields.get("Suites", "").split() and "security" not in fields.get(
                    "URIs", ""):
                return fields.get("URIs", "").split()[0]
    listing = Path("/etc/apt/sources.list")
    for line in listing.read_text().splitlines() if listing.exists() else []:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
            return parts[1]
    return None


def ensure_base_image(name: str = BASE_IMAGE) -> str:
    """A Debian bookworm with Python 3 in the store (debootstrap once, ~2 min)."""
    if image_exists(name):
        return name
    if shutil.which("debootstrap") is None:
        raise EngineError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="mnp-rootfs-") as root:
        argv = ["debootstrap", "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm",
                root]
        mirror = apt_mirror()
        argv += [mirror] if mirror else []
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise EngineError(f"debootstrap failed: {res.stdout[-1500:]}{res.stderr[-500:]}")
        if CA_BUNDLE.exists():
            # This machine's CA bundle, so pip and apt inside builds trust what the host trusts.
            shutil.copy(CA_BUNDLE, Path(root) / CA_BUNDLE.relative_to("/"))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imp = subprocess.run(
            ["docker", "import", "--change", f"ENV PIP_CERT={CA_BUNDLE}",
             "--change", 'CMD ["python3"]', "-", name],
            stdin=tar.stdout, capture_output=True, text=True, check=False)
        tar.stdout.close()
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise EngineError(f"docker import failed: {imp.stderr.strip()}")
    return name


def context_digest(context: Path = REPO, dockerfile: Path = DOCKERFILE) -> str:
    """A short hash of what the build reads (Dockerfile and the files .dockerignore admits),
    so that checkouts building side by side never retag each other's image."""
    h = hashlib.sha256(dockerfile.read_bytes())
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                             "solver", "launcher", "staging", "image"], cwd=context,
                            capture_output=True, text=True, check=False).stdout.split()
    for name in sorted(listed):
        path = context / name
        if path.is_file():
            h.update(name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def build_image(tag: str = IMAGE, base: str | None = None, dockerfile: Path = DOCKERFILE,
                context: Path = REPO, timeout: float = 1800,
                base_arg: str = "PYTHON_IMAGE") -> str:
    """`docker build` of a Dockerfile on `base` (default: the stand-in base image).

    `base_arg` names the Dockerfile's ARG for its base: PYTHON_IMAGE in ours, BASE_IMAGE in
    the examples'.
    """
    base = base or ensure_base_image()
    # Host networking: the build's pip and apt reach the registries only that way here.
    docker("build", "--network", "host", "--build-arg", f"{base_arg}={base}",
           "--label", f"{CONTEXT_LABEL}={context_digest(context, dockerfile)}",
           "-f", str(dockerfile), "-t", tag, str(context), timeout=timeout)
    return tag


def built_from_here(image: str, context: Path = REPO) -> bool | None:
    """Whether `image` was built from this checkout's sources as they are now (None: not
    built by build_image, so unknown)."""
    label = docker("image", "inspect", "-f", f'{{{{index .Config.Labels "{CONTEXT_LABEL}"}}}}',
                   image, check=False).stdout.strip()
    if not label or label == "<no value>":
        return None
    return label == context_digest(context)
