"""The hub as gunicorn serves it in the API tests: hub_app with the configuration
file named by HUB_TEST_CONFIG (SOCKHOP_* variables override it, as in production)."""

from __future__ import annotations

import os

from sockhop.workers.hub.config import load_config
from sockhop.workers.hub.service import hub_app

app = hub_app(load_config(os.environ["HUB_TEST_CONFIG"]))
