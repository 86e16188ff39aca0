"""stacks.bindings: the provider package without its tail of 2,213 imports, and the same stack.

That the synthesized stack is unchanged is what the snapshot tests show (test_snapshot.py): they
synthesize through stacks, so through this loader.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stacks import bindings

REPO = Path(__file__).resolve().parents[2]

PACKAGE_INIT = """\
import publication
__all__ = ["used", "unused"]
NAME = "fake provider"
publication.publish()

from . import unused
"""


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """tmp_path on sys.path; whatever fakeprovider the test made is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0] == "fakeprovider"]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not (isinstance(f, bindings.Finder) and f.package == "fakeprovider")]


def _fake_package(root: Path, init: str) -> None:
    package = root / "fakeprovider"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    for module in ("used", "unused"):
        (package / f"{module}.py").write_text(f"WHO = {module!r}\n")


def test_the_stack_imports_only_the_resource_modules_it_uses() -> None:
    code = ("import sys, stacks.platform_stack; "
            f"print(sum(m.startswith('{bindings.PACKAGE}.') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    # The package's __init__ imports every module listed in its __all__ (2,213 in 21.22.1).
    assert 0 < int(proc.stdout) < 200, proc.stdout


def test_a_package_of_that_layout_skips_its_tail_and_imports_on_demand(importable: Path) -> None:
    _fake_package(importable, PACKAGE_INIT)
    bindings.install("fakeprovider")
    assert "fakeprovider" not in sys.modules  # installing imports nothing
    import fakeprovider  # type: ignore[import-not-found]
    from fakeprovider.used import WHO  # type: ignore[import-not-found]

    assert (WHO, "fakeprovider.unused" in sys.modules) == ("used", False)
    assert fakeprovider._private.NAME == "fake provider"  # what publication keeps aside
    assert not any(isinstance(f, bindings.Finder) and f.package == "fakeprovider"
                   for f in sys.meta_path)  # used once


def test_another_layout_is_imported_as_it_is(importable: Path) -> None:
    _fake_package(importable, PACKAGE_INIT.replace("publication.publish()", "pass"))
    bindings.install("fakeprovider")
    import fakeprovider  # type: ignore[import-not-found]  # noqa: F401

    assert "fakeprovider.unused" in sys.modules


def test_a_module_is_imported_as_it_is(importable: Path) -> None:
    (importable / "fakeprovider.py").write_text("WHO = 'module'\n")
    bindings.install("fakeprovider")
    import fakeprovider  # type: ignore[import-not-found]

    assert fakeprovider.WHO == "module"


def test_a_failing_init_leaves_no_half_made_package(importable: Path) -> None:
    _fake_package(importable, "raise RuntimeError('broken')\n" + PACKAGE_INIT)
    bindings.install("fakeprovider")
    with pytest.raises(RuntimeError, match="broken"):
        import fakeprovider  # type: ignore[import-not-found]  # noqa: F401
    assert "fakeprovider" not in sys.modules


def test_settings_are_checked_before_the_provider_loads() -> None:
    # main.py validates its environment with stacks.config before it builds the stack.
    code = f"import sys, stacks.config; print({bindings.PACKAGE!r} in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    assert proc.stdout.strip() == "False"
