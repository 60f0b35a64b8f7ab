"""The optional compiled fold core (``native/``, Rust with PyO3), when it is installed.

``make install`` builds it (it needs cargo). Without it every record takes the Python gate and
fold, with the same results, three to four times slower; the worker's start-up log says which.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

#: fold_batch(records, earliest_ms, latest_ms, pseudonymize, counting_types) -> (the batch,
#: indexes of the records left to the Python gate, event times of the records it folded). The
#: batch takes the gate's other activities (``add``), writes fold.lua's payload (``payload``) or
#: a PartitionDelta's fields (``write_into``).
NativeFold = Callable[..., tuple[Any, list[int], list[int]]]


def _core() -> Any:
    try:
        return importlib.import_module("esn_pulse_native")
    except ImportError:  # not built here: the pure Python fold does all of it
        return None


_CORE = _core()
native_fold: NativeFold | None = None if _CORE is None else _CORE.fold_batch


def native_constants() -> dict[str, Any] | None:
    """The constants the compiled core was built with (a test compares them with ours)."""
    return None if _CORE is None else dict(_CORE.constants())


def describe() -> str:
    """One line for logs: which fold runs."""
    if native_fold is None:
        return "pure Python fold (the compiled core is not installed: make install builds it)"
    return "compiled fold core (esn_pulse_native)"
