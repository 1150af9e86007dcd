"""Runs the hub for the benchmarks while `sockhop serve` has no --config option yet.

    python bench/hub/serve_hub.py --config FILE --bind 127.0.0.1:PORT --workers 1

The same gunicorn set-up as `sockhop serve` (workers.cli), with the hub's app built
from FILE; Redis comes from the config or SOCKHOP_REDIS_URL. run.py uses
`python -m workers.cli serve --config ...` instead as soon as the command line has it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from workers.cli import GunicornServer, gunicorn_options  # noqa: E402
from workers.hub.config import load_config  # noqa: E402


class HubServer(GunicornServer):
    """Builds the hub's app in each worker, after fork (as GunicornServer does)."""

    def __init__(self, config_path: str, options: dict[str, Any]) -> None:
        self.config_path = config_path
        config = load_config(config_path)
        super().__init__(config.settings, False, options)

    def load(self) -> Any:
        from workers.hub.service import hub_app

        return hub_app(load_config(self.config_path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--bind", default="127.0.0.1:8000")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    log_level = os.environ.get("SOCKHOP_LOG_LEVEL", "info").lower()
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    if not config.settings.redis_url:
        raise SystemExit("serve_hub.py: set redis_url (or SOCKHOP_REDIS_URL)")
    options = gunicorn_options(args.bind, args.workers, config.settings.max_connections,
                               log_level)
    HubServer(args.config, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
