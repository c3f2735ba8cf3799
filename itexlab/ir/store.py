"""The saved-model format: a folder that holds a plan, ready to run without INC, calibration data or
re-partitioning, and readable (to draw and tabulate) without TensorFlow or oneDNN.

    itexlab.json   the manifest, written last: format name and version, the itexlab that wrote
                   it, and the SHA-256 of every other file (a truncated or edited file is refused)
    plan.json      the plan (Plan.to_json): graph structure, partitions with their oneDNN ops
    weights.npz    every array the plan refers to (Plan.arrays), read with allow_pickle=False
    fallback.pb    the nodes that run on TensorFlow, as a GraphDef, for TF's own tools
    qdq.pb         INC's QDQ graph (when saved from a quantization): stock TF runs it as the oracle

No pickle anywhere. Plain Python and numpy only: this module is below every stage.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import uuid
import zipfile

import numpy as np

from ..errors import ModelError
from .plan import Plan

FORMAT = "itexlab-int8-model"
VERSION = 1              # the newest format this itexlab reads and the one it writes
MANIFEST = "itexlab.json"
PLAN, WEIGHTS = "plan.json", "weights.npz"


def check_target(path: str | os.PathLike, force: bool = False) -> None:
    """FileExistsError unless a model may be written to `path`: a new or empty folder, or (force)
    one holding an itexlab model. Called before any work, as well as by `write`."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if not force:
        raise FileExistsError(f"{path} exists and is not empty (force=True replaces the itexlab model in it)")
    if not (path / MANIFEST).exists():
        raise FileExistsError(f"{path} holds no itexlab model: its files are not an itexlab model, not replacing them")


def write(path: str | os.PathLike, plan: Plan, extra: dict[str, bytes], writer: str, force: bool = False) -> pathlib.Path:
    """Write a plan (with its arrays) and extra files into a new folder `path` (see check_target).
    The files are written to a sibling folder first and moved in only once all of them are complete,
    so a failure leaves an old model intact."""
    path = pathlib.Path(path)
    check_target(path, force)
    buffer = io.BytesIO()
    np.savez(buffer, **plan.arrays())
    files = {PLAN: plan.to_json().encode(), WEIGHTS: buffer.getvalue(), **extra}
    manifest = {"format": FORMAT, "version": VERSION, "writer": writer,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()  # not tempfile.mkdtemp: its folder is private (0700), the model would stay so
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def manifest(path: str | os.PathLike, keep: tuple[str, ...] = ()) -> tuple[dict, dict[str, bytes]]:
    """The checked manifest of a saved model, and the bytes of the files named in `keep` (read once,
    for the check and for their reader): ModelError names what is wrong with the folder."""
    path = pathlib.Path(path)
    if not (path / MANIFEST).is_file():
        what = "does not exist" if not path.exists() else "holds no itexlab model (no itexlab.json)"
        raise ModelError(f"{path} {what}")
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{path / MANIFEST} is not valid JSON ({e}): the saved model is damaged") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path / MANIFEST} is not an itexlab model manifest")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise ModelError(f"{path} has an unknown format version {version!r}")
    if version > VERSION:
        raise ModelError(f"{path} was saved by a newer itexlab ({data.get('writer', '?')}, format {version}); "
                         f"this itexlab reads formats up to {VERSION}: upgrade itexlab to load it")
    kept = {}
    for name, digest in data.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ModelError(f"{path} is incomplete: {name} is missing")
        content = file.read_bytes()
        if hashlib.sha256(content).hexdigest() != digest:
            raise ModelError(f"{file} does not match its checksum in itexlab.json: the file was truncated or "
                             "changed after saving")
        if name in keep:
            kept[name] = content
    return data, kept


def listed_files(path: str | os.PathLike) -> set[str]:
    """The files a saved model's manifest lists, without checking them again (manifest() does)."""
    return set(json.loads((pathlib.Path(path) / MANIFEST).read_text()).get("files", {}))


def read_plan(path: str | os.PathLike, with_arrays: bool = True) -> Plan:
    """The plan of a saved model; without arrays it draws and tabulates but does not run."""
    path = pathlib.Path(path)
    _, files = manifest(path, keep=(PLAN, WEIGHTS))
    for name in (PLAN, WEIGHTS):
        if name not in files:  # not in the manifest's list (no itexlab writes such a folder)
            files[name] = (path / name).read_bytes()
    arrays = None
    if with_arrays:
        try:
            with np.load(io.BytesIO(files[WEIGHTS]), allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
        except (ValueError, OSError, zipfile.BadZipFile) as e:
            raise ModelError(f"{path / WEIGHTS} cannot be read: {e}") from None
    try:
        return Plan.from_json(files[PLAN].decode(), arrays)
    except (ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{path / PLAN} is not a plan this itexlab reads: {e}") from None
