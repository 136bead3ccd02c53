"""Optional backends: import one on demand, or fail with one line naming the extra that installs it.

Also the one way a registry names code it must not import yet (:func:`load`): a
``"package.module:attribute"`` string, resolved when the thing is used.

Heavy libraries (OpenVINO, LiteRT, ONNX Runtime, ...) are extras of the ``mfsbench`` distribution and
are imported only by the code that uses them. Which extra holds which package is read from the
installed distribution's own metadata (``pyproject.toml``'s optional-dependencies), so this module
has no table that could drift from the real one.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from importlib import metadata
from types import ModuleType
from typing import Any

from mfsbench.errors import MissingDependencyError

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*).*?extra\s*==\s*['\"]([^'\"]+)['\"]")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def _extras() -> dict[str, str]:
    """Package (canonical name) → the mfsbench extra that lists it; empty when not installed."""
    try:
        requirements = metadata.requires("mfsbench") or []
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return {}
    extras: dict[str, str] = {}
    for line in requirements:
        match = _REQUIREMENT.match(line)
        if match:
            extras.setdefault(_canonical(match.group(1)), match.group(2))
    return extras


def extra_for(package: str) -> str | None:
    """The mfsbench extra that installs ``package`` (a pip name), or None when no extra lists it."""
    return _extras().get(_canonical(package))


def install_hint(package: str, *, reinstall: bool = False) -> str:
    """``pip install 'mfsbench[EXTRA]'`` (the pinned, tested version) or plain ``pip install PKG``;
    with ``reinstall``, the command that restores a damaged installation of it."""
    pip = "pip install --force-reinstall" if reinstall else "pip install"
    extra = extra_for(package)
    if extra is None:
        return f"{pip} {package}"
    return f"{pip} 'mfsbench[{extra}]' (or {pip} {package})"


def require(module: str, package: str, why: str) -> ModuleType:
    """Import ``module`` for ``why`` (a runtime or exporter), or raise the one-line error.

    Raises:
        MissingDependencyError: naming the module, the pip package and its mfsbench extra.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{why} needs the Python package {package!r} ({exc}); install it with: {install_hint(package)}"
        ) from None


def load(target: str) -> Any:
    """The attribute named by ``"package.module:attribute"``, importing its module now.

    Registries (model builders, exporters) hold such strings so that listing them imports nothing
    heavy. A missing module or attribute raises ``ImportError``/``AttributeError`` as Python does.
    """
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"{target!r} must look like 'package.module:attribute'")
    return getattr(importlib.import_module(module), name)
