"""Windows: which rows form the current window and which the reference, minimum sizes, and the
seeded subsampling that keeps very large windows inside a detector's time budget.

Pure functions over arrays with timestamps (numpy datetime64 or epoch seconds; window bounds of
the same type). Windows are half-open, [start, end), so consecutive windows never share a row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from watchkeeper.detectors.result import DetectorResult, jsonable

if TYPE_CHECKING:
    from watchkeeper.detectors.drift.base import Detector



class Window(NamedTuple):
    """[start, end): numbers (epoch seconds) or numpy datetime64, like the timestamps."""

    start: Any
    end: Any


def current_window(end: Any, length: Any) -> Window:
    """The window of `length` that ends at `end` (e.g. now, rounded to the schedule)."""
    return Window(end - length, end)


def reference_window(current: Window, reference: Literal["previous"] | Window) -> Window:
    """The previous window of the same length, or a pinned baseline period as given.

    A pinned baseline (a known-good week) catches slow drift that window-to-window comparison
    never sees; the previous window catches sudden changes and follows seasonality.
    """
    if isinstance(reference, str):
        if reference != "previous":
            raise ValueError(f"reference must be 'previous' or a Window, not {reference!r}")
        return Window(current.start - (current.end - current.start), current.start)
    return Window(*reference)


def in_window(timestamps: ArrayLike, window: Window) -> NDArray[np.bool_]:
    """Mask of the rows whose timestamp falls in [start, end)."""
    ts = np.asarray(timestamps)
    return np.asarray((ts >= window.start) & (ts < window.end), dtype=bool)


def compare_windows(detector: Detector, values: ArrayLike, timestamps: ArrayLike,
                    current: Window, reference: Literal["previous"] | Window = "previous",
                    ) -> DetectorResult:
    """Fit `detector` on the reference window's rows and test the current window's rows.

    Too few rows on either side gives a result with alert=False and details.reason (the
    detector's own minimum), never an exception: an empty hour at night is not an incident.
    """
    data = np.asarray(values)
    ts = np.asarray(timestamps)
    if len(data) != len(ts):
        raise ValueError(f"{len(data)} values but {len(ts)} timestamps")
    ref_window = reference_window(current, reference)
    result = detector.fit(data[in_window(ts, ref_window)]).test(data[in_window(ts, current)])
    windows = {"current": [current.start, current.end], "reference": list(ref_window)}
    return result.model_copy(update={"details": {
        **result.details, "windows": jsonable({k: [str(b) for b in v]
                                                for k, v in windows.items()})}})
