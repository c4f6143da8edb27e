"""Run the `podrec` command line once a gate file appears: `python start_together.py GATE
ingest events FILE --db URL`. The tests start several processes this way, so that their
imports are done and their first statements on the database meet within milliseconds of
each other (started plainly, a slow import would keep them seconds apart)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from podrec.cli import app

gate = Path(sys.argv[1])
Path(f"{gate}.{os.getpid()}.ready").touch()
deadline = time.monotonic() + 120
while not gate.exists() and time.monotonic() < deadline:
    time.sleep(0.002)
app(sys.argv[2:], prog_name="podrec")
