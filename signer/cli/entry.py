"""The `signer` console script: `signer --version` answered before click is imported.

Scripts ask for the version to decide what they talk to, often in loops; importing click
alone costs more than the interpreter's start here. Everything else goes to `main.cli`.
The text is click's own (``%(prog)s, version %(version)s``), which `tests/cli/test_entry.py`
holds equal.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from signer import __version__

        prog = os.path.basename(sys.argv[0]) or "signer"
        sys.stdout.write(f"{prog}, version {__version__}\n")
        sys.stdout.flush()
        sys.exit(0)
    from signer.cli.main import main as click_main

    click_main()
