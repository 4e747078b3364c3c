"""Connects the package to the native engine: paths, log level, shutdown at exit."""

from __future__ import annotations

import atexit
import logging
import os
import tempfile

from . import _core
from ._isolation import readonly_paths

__all__ = ["core", "ensure_configured"]

core = _core
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_configured = False


def ensure_configured() -> None:
    """Tells the engine where its kernel script and broker are; idempotent."""
    global _configured
    if _configured:
        return
    kernel = os.path.join(_PACKAGE_DIR, "_kernel", "kernel.py")
    native_dir = os.path.dirname(os.path.abspath(_core.__file__))
    _core.configure(kernel_script=kernel, broker_path=os.path.join(native_dir, "faas-broker"),
                    temp_parent=tempfile.gettempdir(),
                    isolate_path=os.path.join(native_dir, "faas-isolate"),
                    isolation_readonly_paths=readonly_paths(os.path.dirname(kernel), native_dir))
    _core.set_log_level(logging.getLogger("faas_sdk").getEffectiveLevel())
    _configured = True


def shutdown() -> None:
    """Ends every sandbox of this process. The next platform starts a new engine."""
    _core.shutdown()


atexit.register(shutdown)
