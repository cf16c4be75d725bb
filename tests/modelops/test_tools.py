"""Programs modelops drives are found where their packages put them, also off a non-root user's PATH."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops import tools
from modelops.errors import MissingToolError


def test_a_program_in_sbin_is_found_though_path_lacks_sbin(monkeypatch, tmp_path: Path) -> None:
    found = next((Path(d) / "haproxy" for d in tools.SYSTEM_DIRS if (Path(d) / "haproxy").is_file()), None)
    if found is None:
        pytest.skip("haproxy is not in a system sbin directory here")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # a Debian user's login PATH has no sbin
    assert tools.require("haproxy", "install it") == str(found)


def test_a_missing_program_is_refused_with_how_to_install_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match="apt-get install nothing-here"):
        tools.require("modelops-no-such-program", "apt-get install nothing-here")
