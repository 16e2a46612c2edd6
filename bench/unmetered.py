"""The benchmark's baseline gateway: `jaif serve` without metering and quotas, to measure what they cost.

    .venv/bin/python bench/unmetered.py --port 8001 [--workers 2]

bench/gateway.py starts it beside a `jaif serve` for its "metering+quotas off vs on" rows. The same
server, settings from the same JAIF_* environment; only the meter is built with ``metered=False``
(metering/meter.py). No setting of a served instance turns metering or quota enforcement off: this
script is the one way to run without them.
"""

from __future__ import annotations

import argparse

from jaif import server
from jaif.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    server.run(Settings(), host=None, port=args.port, workers=args.workers, metered=False)


if __name__ == "__main__":
    main()
