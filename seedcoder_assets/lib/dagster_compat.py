"""Two corrections to Dagster 1.13.27's wait for an op-concurrency slot, applied when the code location loads.

1. The wait spins at 100% of a core: `interval_to_next_pending_claim_check` returns `min([0, ...])`, which
   is never positive, so the executor's `sleep_til_ready` never sleeps. The corrected interval is the time
   until the earliest pending claim may be retried (at most 1 s, 0 when one may be tried now).
2. The wait ignores SIGINT/SIGTERM: during execution Dagster only records an interrupt, and the plan loop
   checks for it between steps, never while no step can start. The corrected wait raises Dagster's own
   interrupt error, so the run ends as interrupted and its claims are released.

Both are applied only to the version known to have them.
"""

from __future__ import annotations

import time

import dagster as dg
from dagster._core.errors import DagsterExecutionInterruptedError
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._utils.interrupts import check_captured_interrupt

_BUGGY = {"1.13.27"}


def _interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    if not self._pending_claims:
        return 0.0
    now = time.time()
    waits = [ready_at - now for ready_at in self._pending_timeouts.values()]
    return min(1.0, max(0.0, min(waits))) if len(waits) == len(self._pending_claims) else 0.0


_sleep_til_ready = ActiveExecution.sleep_til_ready


def _interruptible_sleep_til_ready(self: ActiveExecution) -> None:
    if check_captured_interrupt():
        raise DagsterExecutionInterruptedError()
    _sleep_til_ready(self)


def apply() -> None:
    if dg.__version__ in _BUGGY:
        InstanceConcurrencyContext.interval_to_next_pending_claim_check = _interval_to_next_pending_claim_check
        ActiveExecution.sleep_til_ready = _interruptible_sleep_til_ready
