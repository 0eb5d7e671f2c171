"""What serving changes in the whole process: log filters, the collector, exit signals.

`create_app` builds an app and touches nothing beyond it; `inbox serve` builds its app
here, so these settings hold for the server process alone, not for tests or tools.
"""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from .app import create_app
from .settings import Settings, load_settings
from .state import AppState
from .web.drain import delay_exit_signals
from .web.redaction import redact_server_logs


def create_served_app(settings: Settings | None = None) -> Starlette:
    """The app as a server process runs it (the factory `inbox serve` hands uvicorn)."""
    redact_server_logs()
    return create_app(settings or load_settings(), started=settle_process)


def settle_process(state: AppState) -> None:
    """Run once the app has started, inside the server's loop and signal handlers."""
    # What start-up built lives as long as the process: frozen, full collections no
    # longer walk it, and their pauses no longer hold up every socket.
    gc.collect()
    gc.freeze()
    delay_exit_signals(lambda: setattr(state, "draining", True), state.settings.drain_period)
