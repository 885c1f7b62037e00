"""The CeleryExecutor stack for the multi-worker tests: the e2e fixtures of tests/e2e, with the
Celery compose override, two workers, and a project and ports of its own (so it can run next to
the LocalExecutor e2e stack)."""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

os.environ.setdefault("DOWNLINK_E2E_PROJECT", "downlink-test-celery")
os.environ.setdefault("DOWNLINK_E2E_WEB_PORT", "18180")
os.environ.setdefault("DOWNLINK_E2E_MAIL_PORT", "11180")
os.environ.setdefault("DOWNLINK_E2E_DB_PORT", "15533")
os.environ["DOWNLINK_E2E_CELERY"] = "1"  # the e2e conftest adds docker-compose.celery.yaml
os.environ["DOWNLINK_WORKERS"] = "2"
# Two task slots per worker: the night's parallel branches (index, fits_verify, bias_levels after
# archive) cannot all fit on one worker, as on a busy cluster.
os.environ.setdefault("DOWNLINK_WORKER_CONCURRENCY", "2")

_spec = importlib.util.spec_from_file_location("e2e_base", os.path.join(HERE, "..", "e2e", "conftest.py"))
e2e_base = importlib.util.module_from_spec(_spec)
sys.modules["e2e_base"] = e2e_base
_spec.loader.exec_module(e2e_base)

stack = e2e_base.stack  # the session's stack fixture, as in tests/e2e
