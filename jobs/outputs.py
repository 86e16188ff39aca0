"""Read the deployed stack's Terraform outputs (queue, job definition, limits, log group)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.errors import InvalidInput
from launcher import files
from launcher.contract import EFS_MOUNT_PATH
from launcher.inputs import whole_number

OUTPUTS_FILE_ENV = "JOBS_OUTPUTS_FILE"
STACK_ENV = "JOBS_STACK"
# The contract fixes the mount point; used when no outputs are available.
DEFAULT_EFS_MOUNT = EFS_MOUNT_PATH
# ANSI escape sequences (colours, cursor moves) that Terraform may print despite -no-color.
_ANSI_RE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
# The frame Terraform draws around each diagnostic (╷ above, │ before each line, ╵ below).
_FRAME = "╷│╵"


def terraform_message(stderr: str) -> str:
    """Terraform's diagnostics as one line: colour codes and frame gone, every line kept (its
    paragraphs are wrapped at the terminal width, so the lines join with spaces)."""
    lines = (_ANSI_RE.sub("", line).strip().lstrip(_FRAME).strip()
             for line in stderr.splitlines())
    return " ".join(line for line in lines if line)


@dataclass
class StackOutputs:
    """Output values of one stack and where they came from (for messages)."""

    values: dict[str, Any] = field(default_factory=dict)
    source: str = "no stack outputs found"

    def get(self, name: str) -> Any:
        """Return one output value or None."""
        return self.values.get(name)


def project_root(start: Path | None = None) -> Path:
    """The directory holding cdktf.json, searched upward from cwd, else this package's parent."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "cdktf.json").is_file():
            return candidate
    return Path(__file__).resolve().parent.parent


# cdktf nests construct outputs a few levels deep; deeper is not a file of ours.
MAX_NESTING = 32
# A state file of a large stack runs to megabytes; an outputs file to kilobytes.
MAX_STATE_BYTES = 256 << 20


def _flatten(raw: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """Accept `terraform output -json` ({"x": {"value": v}}) and plain {"x": v} alike."""
    if depth > MAX_NESTING:
        raise InvalidInput(f"stack outputs nested more than {MAX_NESTING} levels deep")
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict) and "value" in value and set(value) <= {
            "value", "type", "sensitive"
        }:
            flat[key] = value["value"]
        elif isinstance(value, dict):
            # cdktf nests outputs declared inside constructs under the construct id.
            for inner_key, inner in _flatten(value, depth + 1).items():
                flat.setdefault(inner_key, inner)
        else:
            flat[key] = value
    return flat


def _pick_stack(stacks: Mapping[str, Any], source: str, stack: str | None) -> tuple[str, Any]:
    """Choose the requested stack, or the only one."""
    if stack:
        if stack not in stacks:
            raise InvalidInput(
                f"stack {stack!r} not in {source} (has: {', '.join(sorted(stacks)) or 'none'})",
                hint=f"check --stack / {STACK_ENV}",
            )
        return stack, stacks[stack]
    if len(stacks) != 1:
        raise InvalidInput(
            f"{source} has {len(stacks)} stacks ({', '.join(sorted(stacks))}); choose one",
            hint=f"pass --stack or set {STACK_ENV}",
        )
    return next(iter(stacks.items()))


def _json_object(text: str, what: str, hint: str) -> dict[str, Any]:
    """A JSON object read from a file the CLI did not write: a truncated or foreign one is
    bad input naming the file, not a traceback."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"cannot read {what}: {exc}", hint=hint) from None
    except RecursionError:
        raise InvalidInput(f"cannot read {what}: nested too deeply to parse", hint=hint) from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what} is not a JSON object", hint=hint)
    return raw


def _read_json(path: Path, what: str, hint: str, limit: int = files.MAX_JSON_BYTES
               ) -> dict[str, Any]:
    """A JSON object from a regular file (not a FIFO or device, not nested past parsing)."""
    try:
        raw = files.load_json(path, limit)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc}", hint=hint) from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{what} {path} is not a JSON object", hint=hint)
    return raw


def load_outputs_file(path: Path, stack: str | None = None) -> StackOutputs:
    """Read the file `cdktf deploy --outputs-file` writes: {"<stack>": {"name": value}}."""
    raw = _read_json(path, "stack outputs file",
                     f"check --outputs-file / {OUTPUTS_FILE_ENV}")
    if any(isinstance(v, dict) and "job_queue_name" in _flatten(v) for v in raw.values()):
        name, values = _pick_stack(raw, str(path), stack)
        return StackOutputs(_flatten(values), f"{path} (stack {name})")
    return StackOutputs(_flatten(raw), str(path))


def _local_state(workdir: Path) -> Path | None:
    """The state file of the stack's local backend, if it uses one."""
    try:
        config = json.loads((workdir / "cdk.tf.json").read_text())
    except (OSError, ValueError):
        return None
    local = config.get("terraform", {}).get("backend", {}).get("local")
    if local is None:
        return None
    return (workdir / local.get("path", "terraform.tfstate")).resolve()


def stack_workdir(root: Path, stack: str | None = None) -> tuple[str, Path]:
    """The synthesized stack's name and directory (`cdktf.out/stacks/<stack>`)."""
    manifest = root / "cdktf.out" / "manifest.json"
    resynth = "run `make synth` again"
    stacks = _read_json(manifest, "synth manifest", resynth).get("stacks", {})
    if not isinstance(stacks, dict) or not all(isinstance(v, dict) for v in stacks.values()):
        raise InvalidInput(f"synth manifest {manifest} has no stacks map", hint=resynth)
    name, info = _pick_stack(stacks, str(manifest), stack)
    return name, root / "cdktf.out" / info.get("workingDirectory", f"stacks/{name}")


def synthesized_config(root: Path, stack: str | None = None) -> dict[str, Any]:
    """The stack's Terraform JSON as `make synth` wrote it."""
    if not (root / "cdktf.out" / "manifest.json").is_file():
        raise InvalidInput(f"no synthesized stack in {root / 'cdktf.out'}",
                           hint="run `make synth` first")
    _, workdir = stack_workdir(root, stack)
    try:
        return json.loads((workdir / "cdk.tf.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {workdir / 'cdk.tf.json'}: {exc}",
                           hint="run `make synth` again") from exc


def terraform_outputs(root: Path, stack: str | None = None) -> StackOutputs:
    """`terraform output -json` in the synthesized stack directory, else its local state file."""
    manifest = root / "cdktf.out" / "manifest.json"
    if not manifest.is_file():
        return StackOutputs(source=f"no {manifest} (run `make synth` and deploy first)")
    name, workdir = stack_workdir(root, stack)
    terraform = shutil.which("terraform")
    reason = "terraform is not on PATH"
    if terraform is not None and (workdir / ".terraform").is_dir():
        proc = subprocess.run(
            [terraform, "output", "-json", "-no-color"], cwd=workdir, capture_output=True,
            text=True, timeout=120, env={**os.environ, "TF_IN_AUTOMATION": "1"},
        )
        if proc.returncode == 0:
            found = _json_object(proc.stdout or "{}", f"`terraform output -json` in {workdir}",
                                 "check the terraform version and state")
            return StackOutputs(_flatten(found), f"terraform output in {workdir}")
        reason = (f"`terraform output` failed (exit {proc.returncode}): "
                  f"{terraform_message(proc.stderr) or 'no message'}")
    elif terraform is not None:
        reason = f"{workdir} is not initialized (not deployed from here?)"
    # Without an initialized working directory, a local backend's state still has the outputs.
    state = _local_state(workdir)
    if state is not None and state.is_file():
        outputs = _read_json(state, "state file", "restore it from a backup, or pass "
                             f"--outputs-file / set {OUTPUTS_FILE_ENV}",
                             MAX_STATE_BYTES).get("outputs", {})
        if not isinstance(outputs, dict):
            raise InvalidInput(f"state file {state} has no outputs map")
        return StackOutputs(_flatten(outputs), f"state file {state}")
    return StackOutputs(source=f"no outputs for stack {name}: {reason}")


def find_outputs(outputs_file: str | None, stack: str | None) -> StackOutputs:
    """Flag or JOBS_OUTPUTS_FILE, else the synthesized stack's outputs, else ./outputs.json."""
    stack = stack or os.environ.get(STACK_ENV) or None
    path = outputs_file or os.environ.get(OUTPUTS_FILE_ENV)
    if path:
        return load_outputs_file(Path(path), stack)
    root = project_root()
    found = terraform_outputs(root, stack)
    # stacks/README.md's `npx cdktf deploy --outputs-file outputs.json` leaves this in the root.
    if not found.values and (root / "outputs.json").is_file():
        return load_outputs_file(root / "outputs.json", stack)
    return found


class Settings:
    """Resource names resolved as: flag, else environment variable, else stack output."""

    def __init__(self, outputs_file: str | None = None, stack: str | None = None) -> None:
        self._outputs_file = outputs_file
        self._stack = stack
        self._outputs: StackOutputs | None = None

    @property
    def stack(self) -> str | None:
        """The stack chosen by --stack or JOBS_STACK (None: the only one)."""
        return self._stack or os.environ.get(STACK_ENV) or None

    @property
    def outputs(self) -> StackOutputs:
        """Stack outputs, read on first use only (flags and env may make them unnecessary)."""
        if self._outputs is None:
            self._outputs = find_outputs(self._outputs_file, self._stack)
        return self._outputs

    def resolve(self, flag_value: str | None, env: str, output: str, flag: str,
                check: Callable[[str], str] | None = None) -> str:
        """A required name: flag, env, output, or a bad-input error saying where to set it;
        ``check`` (an argparse type) validates it whichever of them it came from."""
        value = flag_value or os.environ.get(env) or self.outputs.get(output)
        if not value:
            raise InvalidInput(
                f"no {output.replace('_', ' ')}: pass {flag}, set {env}, or deploy the stack "
                f"({self.outputs.source})"
            )
        source = (flag if flag_value else env if os.environ.get(env) else
                  f"the stack output {output} ({self.outputs.source})")
        return self._checked(str(value), source, check)

    def optional(self, env: str | None, output: str,
                 check: Callable[[str], str] | None = None) -> str | None:
        """An optional value: env (if any), else output, else None."""
        from_env = os.environ.get(env) if env else None
        value = from_env or self.outputs.get(output)
        if value in (None, ""):
            return None
        source = env if from_env else f"the stack output {output} ({self.outputs.source})"
        return self._checked(str(value), str(source), check)

    @staticmethod
    def _checked(value: str, source: str, check: Callable[[str], str] | None) -> str:
        if check is None:
            return value
        try:
            return check(value)
        except argparse.ArgumentTypeError as exc:
            raise InvalidInput(f"{exc} (from {source})") from None

    def max_vcpus(self) -> int | None:
        """The compute environment's vCPU ceiling: the deployed stack's `max_vcpus` output."""
        # Not the MAX_VCPUS environment variable: that one sets synth's default, and reading it
        # here let it override what was deployed (one name, one meaning).
        value = self.optional(None, "max_vcpus")
        if value is None:
            return None
        try:
            number = whole_number(value)
        except ValueError:
            number = 0
        if number < 1:
            raise InvalidInput(f"max_vcpus output {value!r} is not a whole number "
                               "greater than 0 (ASCII digits only)")
        return number

    def efs_mount(self) -> str:
        """Where the shared file system is mounted in the job containers."""
        return self.optional(None, "efs_mount_path") or DEFAULT_EFS_MOUNT
