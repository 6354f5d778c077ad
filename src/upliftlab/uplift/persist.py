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

from upliftlab._files import sha256_file, staged_dir
from upliftlab.errors import InputError
from upliftlab.jsonsafe import json_safe

FORMAT_VERSION = 1
MODEL_FILE = "model.pkl"
META_FILE = "model.json"
# what `upliftlab model fit` writes (a folder holding only these, without a marker, is a model
# folder of an upliftlab before markers)
MODEL_FILES = (MODEL_FILE, META_FILE, "comparison.csv", "comparison.json", "deciles.csv",
               "qini_*.png", "oof_scores.parquet", "selection.json")
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


def save_model(model: Any, path: str | os.PathLike, evaluation: Any = None,
               training_data: Any = None) -> Path:
    """Write `model.pkl` and `model.json` into the directory `path` (replaced atomically).

    `evaluation`: e.g. the comparison table (DataFrame) stored in the metadata; `training_data`:
    the training table (or (X, y, treatment)) whose sha256 fingerprint is recorded.
    """
    if not hasattr(model, "estimators_"):
        raise InputError("save_model: the model is not fitted")
    return save_fitted(model, path, uplift_fields(model), evaluation=evaluation,
                       training_data=training_data)


def uplift_fields(model: Any) -> dict[str, Any]:
    """What an uplift model is, for `model.json`: learner, outcome, arms, propensities, features."""
    return {
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


def save_fitted(model: Any, path: str | os.PathLike, fields: dict[str, Any], *,
                owner: str = "model", legacy: tuple[str, ...] = MODEL_FILES,
                evaluation: Any = None, training_data: Any = None,
                extra: Callable[[Path], None] | None = None) -> Path:
    """Write any fitted estimator as `model.pkl` + `model.json` into the folder `path`, staged
    and swapped in whole (`_files.staged_dir`, owned by the command `owner`).

    `model.json` holds `fields` (what the model is: e.g. its kind and features) beside what every
    saved model records (`write_model_files`). `extra(folder)` may add files (a report) to the
    folder before it replaces `path`. `load_model` reads it back with the same checks.
    """
    with staged_dir(path, owner=owner, legacy=legacy, what="model folder") as tmp:
        write_model_files(model, tmp, fields, evaluation=evaluation, training_data=training_data)
        if extra is not None:
            extra(tmp)
    return Path(path)


def write_model_files(model: Any, folder: Path, fields: dict[str, Any] | None = None, *,
                      evaluation: Any = None, training_data: Any = None) -> None:
    """Write `model.pkl` and `model.json` into the (staging) folder `folder`; `fields` default
    to an uplift model's (`uplift_fields`)."""
    pkl = folder / MODEL_FILE
    with open(pkl, "wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(uplift_fields(model) if fields is None else fields),
        "params": {k: (v if isinstance(v, (str, int, float, bool, type(None), dict)) else repr(v))
                   for k, v in model.get_params().items()},
        "training": ({"fingerprint_sha256": fingerprint(training_data),
                      "n_rows": int(len(training_data[0] if isinstance(training_data, (tuple, list))
                                        else training_data))}
                     if training_data is not None else None),
        "versions": library_versions(),
        "pickle_sha256": sha256_file(pkl),
        "pickle_bytes": pkl.stat().st_size,
        "evaluation": evaluation,
    }
    (folder / META_FILE).write_text(json.dumps(json_safe(meta), indent=2))


# a fitted model of upliftlab is a few MiB to a few hundred; anything larger is not one of ours
# (and reading it whole would exhaust the memory). UPLIFTLAB_MAX_MODEL_BYTES overrides.
MAX_MODEL_BYTES = 4 << 30
MAX_META_BYTES = 64 << 20


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file `path`, read once through one descriptor (a file swapped
    meanwhile is not re-opened), at most `limit` bytes; InputError for a folder, a device, a
    pipe, an unreadable or too large file."""
    import stat

    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: {what} is missing") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path}: {what} is not a regular file")
        if info.st_size > limit:
            raise InputError(f"{path}: {what} is {info.st_size:,} bytes, more than the limit of "
                             f"{limit:,}")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 24, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise InputError(f"{path}: {what} grew beyond the limit of {limit:,} bytes "
                                 "while it was read")
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata (`model.json`) of a saved model, without unpickling anything."""
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{path}: not a model folder (no such folder)")
    meta_path = folder / META_FILE
    if not meta_path.exists() and not meta_path.is_symlink():
        raise InputError(f"{path}: not a saved model (no {META_FILE})")
    raw = _read_regular(meta_path, MAX_META_BYTES, META_FILE)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{meta_path}: unreadable metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: metadata is a JSON {type(meta).__name__}, not an object")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{meta_path}: format version {meta.get('format_version')!r}, "
                         f"this upliftlab reads {FORMAT_VERSION}")
    digest = meta.get("pickle_sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise InputError(f"{meta_path}: no valid pickle_sha256")
    return meta


def _is_fitted(model: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        return False
    return True


def load_model(path: str | os.PathLike, trusted: bool = True, *, expect: type | None = None
               ) -> Any:
    """Load a model saved by `save_model`, after checking the pickle's sha256 (see the trust model).

    `model.pkl` is read once (a regular file, within a size limit) and the bytes whose sha256
    was checked are the bytes unpickled, so a file swapped between check and load is never run.
    `trusted=True` states that the directory was written by you or your team (a pickle runs
    code); `trusted=False` refuses. `expect`: the estimator class the pickle must hold (default
    `UpliftModel`; the risk model passes its own). A different major.minor version of a library the model
    depends on gives a warning (predictions may differ or unpickling fail).
    """
    from upliftlab.uplift.model import UpliftModel

    expect = UpliftModel if expect is None else expect
    meta = read_metadata(path)
    if not trusted:
        raise InputError(f"{path}: refusing to unpickle a model not marked as trusted (pickles run "
                         "code); inspect it with read_metadata() and load it with trusted=True "
                         "only if you or your team wrote it")
    pkl = Path(path) / MODEL_FILE
    limit = int(os.environ.get("UPLIFTLAB_MAX_MODEL_BYTES", MAX_MODEL_BYTES))
    data = _read_regular(pkl, limit, MODEL_FILE)
    if hashlib.sha256(data).hexdigest() != meta["pickle_sha256"]:
        raise InputError(f"{pkl}: checksum does not match {META_FILE} (the file was changed or "
                         "corrupted); refusing to load it")
    now = library_versions()
    for lib, saved in (meta.get("versions") or {}).items():
        if lib != "python" and ".".join(str(saved).split(".")[:2]) != ".".join(now.get(lib, "").split(".")[:2]):
            warnings.warn(f"model {path} was saved with {lib} {saved}, this is {now.get(lib)}: "
                          "predictions may differ", UserWarning, stacklevel=2)
    try:
        model = pickle.loads(data)  # noqa: S301 - checksum verified above; trust model in docstring
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises almost anything
        raise InputError(f"{pkl}: cannot unpickle the model ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'damaged file'})") from None
    if not isinstance(model, expect) or not _is_fitted(model):
        raise InputError(f"{pkl}: holds a {type(model).__name__}, not a fitted upliftlab "
                         f"{expect.__name__}")
    model.metadata_ = meta
    return model
