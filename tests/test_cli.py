"""The entry points exist and answer --version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wizard import __version__


def test_python_dash_m_wizard_version() -> None:
    out = subprocess.run([sys.executable, "-m", "wizard", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"enerlink-migrate {__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("enerlink-migrate")
    assert script.exists(), "pip install -e . should have created the enerlink-migrate script"
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert __version__ in out
