"""Saving and loading fitted uplift models: `model.pkl` plus `model.json` metadata (features and
types, arms, outcome, training-data fingerprint, library versions, evaluation), checked on load.

Trust model: a pickle executes code when it is loaded. Load only models that you or your team
wrote, from a directory that only you or your team can write. The sha256 of `model.pkl` stored in
`model.json` is checked *before* unpickling, so a corrupted, truncated or accidentally swapped
file is refused; it does not protect against someone who can write both files (they can write a
matching checksum). `load_model(path, trusted=False)` refuses to unpickle at all; use
`read_metadata` to inspect a model you do not trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from upliftlab._files import staged_dir
from upliftlab.errors import InputError

FORMAT_VERSION = 1
MODEL_FILE = "model.pkl"
META_FILE = "model.json"
_LIBS = ("upliftlab", "causalml", "lightgbm", "sklearn", "numpy", "pandas")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled model depends on, and Python's."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = version("scikit-learn" if lib == "sklearn" else lib)
        except PackageNotFoundError:
            out[lib] = "absent"
    return out


def fingerprint(data: Any) -> str:
    """sha256 of a training table (DataFrame, or a tuple of DataFrames/arrays), order-sensitive.

    Hashes the column names, dtypes and pandas' per-row hashes (vectorised), not the pickle of
    the frame, so equal data gives equal fingerprints across pandas versions' memory layouts.
    """
    h = hashlib.sha256()
    parts = data if isinstance(data, (tuple, list)) else (data,)
    for part in parts:
        df = part if isinstance(part, pd.DataFrame) else pd.DataFrame({"_": np.asarray(part)})
        h.update(json.dumps([[str(c), str(df[c].dtype)] for c in df.columns]).encode())
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, pd.DataFrame):
        return json.loads(obj.to_json(orient="records"))
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


def save_model(model: Any, path: str | os.PathLike, evaluation: Any = None,
               training_data: Any = None) -> Path:
    """Write `model.pkl` and `model.json` into the directory `path` (replaced atomically).

    `evaluation`: e.g. the comparison table (DataFrame) stored in the metadata; `training_data`:
    the training table (or (X, y, treatment)) whose sha256 fingerprint is recorded.
    """
    if not hasattr(model, "estimators_"):
        raise InputError("save_model: the model is not fitted")
    fields = {
        "learner": model.learner_,
        "outcome": model.outcome,
        "control": model.control_,
        "arms": list(model.arms_),
        "treatment_arms": list(model.treatment_arms_),
        "propensity": model.propensity_,
        "features": [{"name": str(c), "kind": model.feature_dtypes_[c],
                      "categories": model.categories_.get(c)}
                     for c in model.feature_names_in_],
    }
    return save_fitted(model, path, fields, evaluation=evaluation, training_data=training_data)


def save_fitted(model: Any, path: str | os.PathLike, fields: dict[str, Any], *,
                evaluation: Any = None, training_data: Any = None,
                extra: Callable[[Path], None] | None = None) -> Path:
    """Write any fitted estimator as `model.pkl` + `model.json` into `path`, atomically.

    `model.json` holds `fields` (what the model is: e.g. its kind and features) beside what every
    saved model records: format version, creation time, params, training fingerprint, library
    versions, the pickle's sha256 and the `evaluation`. `extra(folder)` may add files (a report)
    to the folder before it replaces `path`. `load_model` reads it back with the same checks.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    with staged_dir(out) as tmp:
        pkl = tmp / MODEL_FILE
        with open(pkl, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **fields,
            "params": {k: (v if isinstance(v, (str, int, float, bool, type(None), dict)) else repr(v))
                       for k, v in model.get_params().items()},
            "training": ({"fingerprint_sha256": fingerprint(training_data),
                          "n_rows": int(len(training_data[0] if isinstance(training_data, (tuple, list))
                                            else training_data))}
                         if training_data is not None else None),
            "versions": library_versions(),
            "pickle_sha256": _sha256(pkl),
            "evaluation": _jsonable(evaluation),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
        if extra is not None:
            extra(tmp)
    return out


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata (`model.json`) of a saved model, without unpickling anything."""
    meta_path = Path(path) / META_FILE
    if not meta_path.exists():
        raise InputError(f"{path}: not a saved model (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{meta_path}: unreadable metadata ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{meta_path}: format version {meta.get('format_version')!r}, "
                         f"this upliftlab reads {FORMAT_VERSION}")
    return meta


def load_model(path: str | os.PathLike, trusted: bool = True) -> Any:
    """Load a model saved by `save_model`, after checking the pickle's sha256 (see the trust model).

    `trusted=True` states that the directory was written by you or your team (a pickle runs
    code); `trusted=False` refuses. A different major.minor version of a library the model
    depends on gives a warning (predictions may differ or unpickling fail).
    """
    meta = read_metadata(path)
    if not trusted:
        raise InputError(f"{path}: refusing to unpickle a model not marked as trusted (pickles run "
                         "code); inspect it with read_metadata() and load it with trusted=True "
                         "only if you or your team wrote it")
    pkl = Path(path) / MODEL_FILE
    if not pkl.exists():
        raise InputError(f"{path}: {MODEL_FILE} is missing")
    if _sha256(pkl) != meta.get("pickle_sha256"):
        raise InputError(f"{pkl}: checksum does not match {META_FILE} (the file was changed or "
                         "corrupted); refusing to load it")
    now = library_versions()
    for lib, saved in (meta.get("versions") or {}).items():
        if lib != "python" and ".".join(str(saved).split(".")[:2]) != ".".join(now.get(lib, "").split(".")[:2]):
            warnings.warn(f"model {path} was saved with {lib} {saved}, this is {now.get(lib)}: "
                          "predictions may differ", UserWarning, stacklevel=2)
    with open(pkl, "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - checksum verified above; trust model in docstring
    model.metadata_ = meta
    return model
