"""A worker that always ends after SIGTERM or SIGINT: a graceful stop, or an exit at a deadline.

Stopping waits for the batch in flight and a last commit; with Redis or Kafka away those could
wait for ever, and a worker that ignores SIGTERM is killed by its supervisor anyway, later. Redis
holds the fences, so an exit at the deadline loses nothing: the next start re-reads from them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

from faust import Worker

log = logging.getLogger(__name__)

#: Under Kubernetes' default 30 s grace period, so the exit is ours and not a SIGKILL.
STOP_DEADLINE_S = 25.0
#: Exit code of a stop that hit the deadline (documented in docs/operations/).
FORCED_EXIT_CODE = 70


def _exit_now() -> None:
    log.error("The worker did not stop within %.0f s of the signal; exiting now", STOP_DEADLINE_S)
    logging.shutdown()
    os._exit(FORCED_EXIT_CODE)


class BoundedStopWorker(Worker):
    """Faust's worker, with a deadline armed by the first stop signal."""

    def _schedule_shutdown(self, signal: signal.Signals, *args: Any) -> None:
        if not getattr(self, "_stop_deadline_armed", False):
            self._stop_deadline_armed = True
            timer = threading.Timer(STOP_DEADLINE_S, _exit_now)
            timer.daemon = True
            timer.start()
        super()._schedule_shutdown(signal, *args)
