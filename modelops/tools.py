"""Programs modelops drives (haproxy, prometheus …): found on PATH, or a MissingToolError that says how to install."""

from __future__ import annotations

import os
import shutil

from modelops.errors import MissingToolError

# Debian installs daemons such as haproxy in /usr/sbin, which is on root's PATH but not on a user's: look there too.
SYSTEM_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def require(name: str, install_hint: str) -> str:
    """The path of program ``name`` (on PATH, else in the system's sbin directories), or MissingToolError."""
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SYSTEM_DIRS]))
    if path is None:
        raise MissingToolError(install_hint)
    return path
