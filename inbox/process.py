"""What serving changes in the whole process: log filters, the collector, exit signals.

`create_app` builds an app and touches nothing beyond it; `inbox serve` builds its app
here, so these settings hold for the server process alone, not for tests or tools.
"""

from __future__ import annotations

import atexit
import gc

from starlette.applications import Starlette

from .app import create_app
from .settings import Settings, load_settings
from .state import AppState
from .telemetry.logs import configure_logging
from .telemetry.metrics import SERVER_PROCESSES
from .telemetry.workers import worker_stopped
from .web.drain import delay_exit_signals


def create_served_app(settings: Settings | None = None) -> Starlette:
    """The app as a server process runs it (the factory `inbox serve` hands uvicorn)."""
    settings = settings or load_settings()
    configure_logging(settings.log_format, settings.log_level)
    SERVER_PROCESSES.set(1)
    atexit.register(worker_stopped)
    return create_app(settings, started=settle_process)


def settle_process(state: AppState) -> None:
    """Run once the app has started, inside the server's loop and signal handlers."""
    # What start-up built lives as long as the process: frozen, full collections no
    # longer walk it, and their pauses no longer hold up every socket.
    gc.collect()
    gc.freeze()
    delay_exit_signals(lambda: setattr(state, "draining", True), state.settings.drain_period)
