"""The compute section of bench/RESULTS.md (between the compute markers), shared by bench/accounting.py
and bench/slurm_sync.py: each replaces its own rows (by the first cell's prefix) and keeps the other's."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"
START, END = "<!-- compute:start -->", "<!-- compute:end -->"
HEADER = ["| case | figure | target | measured on |", "|---|---|---|---|"]


def write(prefix: str, rows: list[str], command: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    kept: list[str] = []
    if START in text:
        old = text[text.index(START) + len(START): text.index(END)].splitlines()
        kept = [r for r in old if r.startswith("| ") and r not in HEADER and not r.startswith(f"| {prefix}")]
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()} ({os.cpu_count()} cores), `{command}`"
    rows = [row.replace("{when}", when) for row in rows]
    block = "\n".join([START, "Compute: accounting import and Slurm account sync (bench/accounting.py, "
                       "bench/slurm_sync.py).", "", *HEADER, *kept, *rows, END])
    if START in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
