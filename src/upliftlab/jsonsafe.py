"""One JSON cleaner for every file upliftlab writes (report.json, model.json, policy.json, ...):
NaN and ±inf become null, numpy and pandas values plain Python, so `json.dumps(..., allow_nan=False)`
never fails and never writes the non-standard `NaN`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def json_safe(obj: Any) -> Any:
    """NaN and ±inf -> None, numpy scalars -> Python, tuples and arrays -> lists, a DataFrame ->
    its records; recursively. Anything else (a date, a string) is left as it is."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a DataFrame (pandas not imported)
        return json_safe(obj.to_dict(orient="records"))
    if getattr(obj, "ndim", 0) and hasattr(obj, "tolist"):  # an array (numpy not imported)
        return json_safe(obj.tolist())
    if hasattr(obj, "item") and not isinstance(obj, (int, float)):
        obj = obj.item()
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None  # np.float64 is a float: made plain
    return obj


__all__ = ["json_safe"]
