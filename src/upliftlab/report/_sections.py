"""The report's model and policy sections, read from the folders `upliftlab model fit` and
`upliftlab policy` write (JSON, CSV, PNG and the out-of-fold scores only; never model.pkl).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from upliftlab.errors import InputError

MODEL_REQUIRED = ("model.json", "comparison.csv", "deciles.csv")
POLICY_REQUIRED = ("policy.json",)
TOP_FRACTION = 0.2  # the depth of the plain-words targeting line
COMPARISON_COLUMNS = ("learner", "arm", "n_treated", "n_control", "qini", "qini_low",
                      "qini_high", "auuc", "auuc_low", "auuc_high", "fit_seconds",
                      "peak_rss_mib", "chosen")
COMPARISON_OPTIONAL = ("budgeted_value", "budgeted_value_low", "budgeted_value_high",
                       "policy_value", "policy_value_low", "policy_value_high", "qini_area",
                       "qini_area_low", "qini_area_high", "distinguishable", "normalisation")
DECILE_COLUMNS = ("arm", "bin", "n_treated", "n_control", "predicted", "observed", "ci_low",
                  "ci_high")
ALLOCATION_KEYS = ("counts", "n_customers", "n_treated", "expected_incremental_reactivations",
                   "expected_value", "expected_cost", "cost_per_incremental_reactivation",
                   "budget", "budget_used", "optimality_gap", "method",
                   "marginal_cost_per_reactivation")


def _folder(path: str | os.PathLike, required: tuple[str, ...], what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{what} {folder}: no such folder")
    for name in required:
        if not (folder / name).is_file():
            raise InputError(f"{what} {folder}: missing {name} (not a folder written by "
                             f"`upliftlab {'model fit' if what == '--model' else 'policy'}`?)")
    from upliftlab._files import verify

    # a folder sealed by upliftlab is read only if every file is the one that was written
    # (never a mix of two runs); folders from before the marker are read as they are
    marker = verify(folder)
    owner = "model" if what == "--model" else "policy"
    if marker is not None and marker["owner"] != owner:
        raise InputError(f"{what} {folder}: written by `upliftlab {marker['owner']}`, not by "
                         f"`upliftlab {'model fit' if owner == 'model' else 'policy'}`")
    return folder


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None


def _read_csv(path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
              ) -> list[dict[str, Any]]:
    import pandas as pd

    from upliftlab.jsonsafe import json_safe

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
    keep = list(columns) + [c for c in optional if c in frame.columns]
    return json_safe(frame[keep].to_dict(orient="records"))


def _need(d: Any, keys: tuple[str, ...], where: Path) -> None:
    if not isinstance(d, Mapping):
        raise InputError(f"{where}: expected a JSON object")
    missing = [k for k in keys if k not in d]
    if missing:
        raise InputError(f"{where}: missing field(s) {', '.join(missing)}")


def png_name(arm: str) -> str:
    """The Qini plot's file name for `arm` (as `upliftlab.uplift.workflow.qini_plots` names it)."""
    return "qini_" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(arm)) + ".png"


def load_model(path: str | os.PathLike) -> dict[str, Any]:
    """The report's `model` section from a model folder (model.json, comparison.csv,
    deciles.csv, and oof_scores.parquet when present for the targeting line)."""
    folder = _folder(path, MODEL_REQUIRED, "--model")
    meta = _read_json(folder / "model.json")
    _need(meta, ("learner", "outcome", "control", "treatment_arms"), folder / "model.json")
    comparison = _read_csv(folder / "comparison.csv", COMPARISON_COLUMNS, COMPARISON_OPTIONAL)
    selection = (_read_json(folder / "selection.json") if (folder / "selection.json").is_file()
                 else None)
    deciles = _read_csv(folder / "deciles.csv", DECILE_COLUMNS)
    arms = [str(a) for a in meta["treatment_arms"]]
    known = {str(r["arm"]) for r in deciles}
    if not set(arms) <= known:
        raise InputError(f"{folder / 'deciles.csv'}: no rows for arm(s) "
                         f"{', '.join(sorted(set(arms) - known))} of model.json")
    return {
        "folder": str(folder),
        "learner": meta["learner"],
        "outcome": meta["outcome"],
        "control": meta["control"],
        "arms": arms,
        "features": [f["name"] if isinstance(f, Mapping) else str(f)
                     for f in meta.get("features") or []],
        "n_rows": (meta.get("training") or {}).get("n_rows"),
        "created": meta.get("created"),
        "comparison": comparison,
        "chosen": [r for r in comparison if r.get("chosen")],
        "selection": selection,
        "deciles": deciles,
        "targeting": _targeting(folder, meta, arms),
    }


def _targeting(folder: Path, meta: Mapping[str, Any], arms: list[str]) -> list[dict[str, Any]]:
    """Per arm, the share of the arm's incremental outcomes (out of fold, the Qini curve's end)
    that treating the top TOP_FRACTION by predicted uplift captures: Q(20%) / Q(100%)."""
    path = folder / "oof_scores.parquet"
    if not path.is_file():
        return []
    import numpy as np
    import pandas as pd

    from upliftlab.jsonsafe import json_safe
    from upliftlab.metrics import qini_curve

    import pyarrow.parquet as pq

    try:
        columns = pq.read_schema(path).names
        fixed = {"customer_id", "base", "arm", "fold"}
        outcome = [c for c in columns if c not in fixed and not c.startswith("uplift_")]
        need = ["arm"] + [f"uplift_{a}" for a in arms]
        if len(outcome) != 1 or any(c not in columns for c in need):
            raise InputError(f"{path}: expected customer_id, base, arm, fold, uplift_<arm> per "
                             f"arm and one outcome column; found {', '.join(columns)}")
        oof = pd.read_parquet(path, columns=need + outcome)  # only what the curves need
    except InputError:
        raise
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    y_all = oof[outcome[0]].to_numpy(dtype=float)
    arm_all = oof["arm"].astype(str).to_numpy()
    control = str(meta["control"])
    out = []
    for arm in arms:
        rows = (arm_all == arm) | (arm_all == control)
        t = (arm_all[rows] == arm).astype(int)
        if t.sum() == 0 or t.sum() == rows.sum():
            continue
        ya = y_all[rows]
        c = qini_curve(ya, oof[f"uplift_{arm}"].to_numpy(dtype=float)[rows], t)
        frac = c.x / c.x[-1]
        top = float(np.interp(TOP_FRACTION, frac, c.y))
        total = float(c.y[-1])
        # a share of a total that cannot be told from zero explodes: only where it can
        yt, yc = ya[t == 1], ya[t == 0]
        se = float(np.sqrt(yt.var(ddof=1) / len(yt) + yc.var(ddof=1) / len(yc))) \
            if min(len(yt), len(yc)) > 1 else float("inf")
        distinguishable = bool(abs(yt.mean() - yc.mean()) > 1.959964 * se)
        out.append({"arm": arm, "fraction": TOP_FRACTION, "incremental_top": top,
                    "incremental_all": total, "distinguishable": distinguishable,
                    "share_captured": top / total if total > 0 and distinguishable else None,
                    "outcome": outcome[0]})
    return json_safe(out)


def load_policy(path: str | os.PathLike) -> dict[str, Any]:
    """The report's `policy` section from a policy folder: policy.json's headline fields under
    policy.json's own names (allocation, exploration, budget_curve, off_policy, truth)."""
    folder = _folder(path, POLICY_REQUIRED, "--policy")
    where = folder / "policy.json"
    p = _read_json(where)
    _need(p, ("objective", "allocation", "budget_curve"), where)
    _need(p["allocation"], ALLOCATION_KEYS, where)
    _need(p["budget_curve"], ("budget", "reactivations"), where)
    section: dict[str, Any] = {
        "folder": str(folder),
        "objective": p["objective"],
        "costs": p.get("costs"),
        "capacity": p.get("capacity"),
        "allocation": {k: p["allocation"][k] for k in ALLOCATION_KEYS},
        "exploration": p.get("exploration"),
        "plan_value": p.get("plan_value"),
        "profile": p.get("profile"),
        "currency": p.get("currency"),
        "budget_curve": {k: p["budget_curve"].get(k) for k in ("budget", "cost",
                                                               "reactivations")},
        "off_policy": None,
        "truth": p.get("truth"),
    }
    ope = p.get("off_policy")
    if ope:
        _need(ope, ("method", "reactivation", "incremental_reactivations", "cost", "baselines",
                    "comparisons"), where)
        comps = {c["baseline"]: c for c in ope["comparisons"] if c.get("metric") ==
                 "reactivations"}
        section["off_policy"] = {
            "method": ope["method"],
            "experiment": ope.get("experiment"),
            "customers": ope.get("customers"),
            "population": ope.get("population"),
            "reactivation": ope["reactivation"],
            "incremental_reactivations": ope["incremental_reactivations"],
            "cost": ope["cost"],
            "cost_per_incremental_reactivation": ope.get("cost_per_incremental_reactivation"),
            "baselines": [{"name": name, "reactivation": b["reactivation"], "cost": b["cost"],
                           "difference": comps.get(name, {}).get("difference"),
                           "p_value": comps.get(name, {}).get("p_value"),
                           "significant": comps.get(name, {}).get("significant"),
                           "statement": comps.get(name, {}).get("statement")}
                          for name, b in ope["baselines"].items()],
        }
    return section


def section(value: Any, loader) -> dict[str, Any] | None:
    """A folder path is loaded; a dict (an already loaded section) is used as it is."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return dict(value)
    return loader(value)


def _data_uri(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def model_figures(model: Mapping[str, Any]) -> dict[str, str]:
    """arm -> the Qini PNG of the model folder as a data: URI (arms without one are left out)."""
    folder = Path(model.get("folder") or "")
    out = {}
    for arm in model["arms"]:
        uri = _data_uri(folder / png_name(arm)) if model.get("folder") else None
        if uri:
            out[arm] = uri
    return out


def policy_figure(policy: Mapping[str, Any]) -> str | None:
    if not policy.get("folder"):
        return None
    return _data_uri(Path(policy["folder"]) / "budget_curve.png")
