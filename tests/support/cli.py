"""The command line as a user runs it: `signer` in its own process."""

from __future__ import annotations

import subprocess
import sys


def signer(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``signer *args``; with ``check``, a non-zero exit fails the test with its stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"signer {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc
