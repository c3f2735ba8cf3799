"""The saved-model format: a folder that holds a plan, ready to run without INC, calibration data or
re-partitioning, and readable (to draw and tabulate) without TensorFlow or oneDNN.

    itexlab.json   the manifest, written last: format name and version, the itexlab that wrote
                   it, and the SHA-256 of every other file (a truncated or edited file is refused)
    plan.json      the plan (Plan.to_json): graph structure, partitions with their oneDNN ops
    weights.npz    every array the plan refers to (Plan.arrays), numbers only, no pickle
    fallback.pb    the nodes that run on TensorFlow, as a GraphDef, for TF's own tools
    qdq.pb         INC's QDQ graph (when saved from a quantization): stock TF runs it as the oracle

A folder may come from a stranger, so reading one trusts nothing in it: the manifest must list every
file that is read (plan.json and weights.npz at least), each a plain file directly inside the folder
(no path, no link, no device) under a size limit, whose checksum matches, and all of that is checked
before anything is parsed. Nothing outside the folder is ever looked at. Arrays are read with their
headers checked against their bytes. Writing never deletes a file that is not part of an intact
itexlab model written before.

Plain Python and numpy only: this module is below every stage.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import json
import os
import pathlib
import re
import stat
import uuid
import warnings
import zipfile

import numpy as np

from ..errors import ModelError, TargetError, TargetExistsError
from .plan import Plan

FORMAT = "itexlab-int8-model"
VERSION = 1              # the newest format this itexlab reads and the one it writes
MANIFEST = "itexlab.json"
PLAN, WEIGHTS = "plan.json", "weights.npz"
REQUIRED = (PLAN, WEIGHTS)  # what loading reads: the manifest must list them
# Size limits per file: far above any model built here (Inception V3: plan.json 2.1 MB, weights.npz
# 115 MB, qdq.pb 92 MB), and below what would exhaust memory (TF's GraphDef parser stops at 2 GB).
MAX_BYTES = {MANIFEST: 2**20, PLAN: 2**28}
MAX_FILE_BYTES = 2**32
# A file name the manifest may list: one name inside the folder, no path, no hidden file.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
# dtype kinds a saved array may have: booleans and numbers (never objects, which need pickle)
_ARRAY_KINDS = "biuf"


@dataclasses.dataclass
class Saved:
    """A checked folder: its manifest, and the bytes of the files that were asked for."""

    manifest: dict
    files: dict[str, bytes]


# ----------------------------------------------------------------------------------------- reading

def read(path: str | os.PathLike, keep: tuple[str, ...] = REQUIRED) -> Saved:
    """Check a saved model's folder and read the files named in `keep` that its manifest lists (each
    read once, for the checksum and for its reader). ModelError names what is wrong with it."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise ModelError(f"{path} {'is not a folder' if path.exists() else 'does not exist'}")
    try:
        text = _read_plain_file(path, MANIFEST).decode()
        data = json.loads(text)
    except FileNotFoundError:
        raise ModelError(f"{path} holds no itexlab model (no {MANIFEST})") from None
    except (ValueError, RecursionError) as e:  # not UTF-8 or not JSON
        raise ModelError(f"{path / MANIFEST} is not valid JSON ({e}): the saved model is damaged") from None
    except _NotPlain as e:
        raise ModelError(f"{path} is not an intact itexlab model: {MANIFEST} {e}") from None
    files = _check_manifest(path, data)
    kept = {}
    for name, digest in files.items():
        try:
            content = _read_plain_file(path, name)
        except FileNotFoundError:
            raise ModelError(f"{path} is incomplete: {name} is missing") from None
        except _NotPlain as e:
            raise ModelError(f"{path} is not an intact itexlab model: {name} {e}") from None
        if hashlib.sha256(content).hexdigest() != digest:
            raise ModelError(f"{path / name} does not match its checksum in {MANIFEST}: the file was truncated or "
                             "changed after saving")
        if name in keep:
            kept[name] = content
    return Saved(data, kept)


def read_plan(path: str | os.PathLike, with_arrays: bool = True) -> Plan:
    """The plan of a saved model; without arrays it draws and tabulates but does not run."""
    return plan_of(read(path, REQUIRED if with_arrays else (PLAN,)), path, with_arrays)


def plan_of(saved: Saved, path: str | os.PathLike, with_arrays: bool = True) -> Plan:
    """The plan in a checked folder (see read), with its arrays unless asked not to."""
    path = pathlib.Path(path)
    arrays = read_arrays(saved.files[WEIGHTS], path / WEIGHTS) if with_arrays else None
    try:
        return Plan.from_json(saved.files[PLAN].decode(), arrays)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
        raise ModelError(f"{path / PLAN} is not a plan this itexlab reads: {type(e).__name__}: {e}") from None


class _NotPlain(Exception):
    """A listed name that is not a plain file directly inside the folder, or one too large."""


def _read_plain_file(folder: pathlib.Path, name: str) -> bytes:
    """The bytes of `name`, a regular file directly inside `folder`, or _NotPlain (a symbolic link,
    a folder, a device or a pipe, which it is never opened as) or FileNotFoundError."""
    limit = MAX_BYTES.get(name, MAX_FILE_BYTES)
    try:  # O_NOFOLLOW: a link is refused, not followed; O_NONBLOCK: a pipe does not hang the open
        fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _NotPlain("is not a plain file inside the folder (a link, a folder or a device)"
                        if e.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO, errno.ENOTDIR) else f"cannot be read ({e.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _NotPlain("is not a plain file inside the folder (a link, a folder or a device)")
        raise _NotPlain(f"is larger ({info.st_size:,} bytes) than a saved model's {name} may be ({limit:,})")
    with os.fdopen(fd, "rb") as file:
        content = file.read(limit + 1)
    if len(content) > limit:
        raise _NotPlain(f"is larger than a saved model's {name} may be ({limit:,} bytes)")
    return content


def _check_manifest(path: pathlib.Path, data) -> dict[str, str]:
    """The manifest's file list, once its format, version and every entry are what this itexlab
    writes: one plain name per file (nothing outside the folder can be named), a SHA-256 each, and
    the files loading reads among them."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{path / MANIFEST} is not an itexlab model manifest")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelError(f"{path} has an unknown format version {version!r}")
    if version > VERSION:
        raise ModelError(f"{path} was saved by a newer itexlab ({data.get('writer', '?')}, format {version}); "
                         f"this itexlab reads formats up to {VERSION}: upgrade itexlab to load it")
    files = data.get("files")
    if not isinstance(files, dict):
        raise ModelError(f"{path / MANIFEST} lists no files: the saved model is damaged")
    for name, digest in files.items():
        if not _FILE_NAME.fullmatch(name) or name == MANIFEST:
            raise ModelError(f"{path / MANIFEST} names {name[:80]!r}, which is not the name of a file inside the "
                             "folder: the saved model is damaged or forged")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ModelError(f"{path / MANIFEST} gives {name} no SHA-256 checksum: the saved model is damaged")
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise ModelError(f"{path / MANIFEST} does not list {', '.join(missing)}: the saved model is damaged")
    return files


def read_arrays(content: bytes, where: pathlib.Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz as np.savez writes it (members stored uncompressed), each header checked
    before its array is made: a boolean or numeric dtype (no pickle), and a shape that needs exactly
    the bytes the member holds, so a forged header cannot make numpy allocate what is not there."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for info in archive.infolist():
                name = info.filename.removesuffix(".npy")
                if (name == info.filename or name in arrays or info.compress_type != zipfile.ZIP_STORED
                        or info.file_size != info.compress_size or info.file_size > len(content)):
                    raise ValueError(f"member {info.filename[:80]!r} is not an array as np.savez stores it")
                with archive.open(info) as member:
                    arrays[name] = _read_array(member, info.file_size)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError, TypeError) as e:
        raise ModelError(f"{where} cannot be read: {e}") from None
    return arrays


def _read_array(member, size: int) -> np.ndarray:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"array format version {version} is not one np.savez writes")
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.subdtype is not None:
        raise ValueError(f"an array of dtype {dtype} is not one itexlab saves (numbers and booleans only)")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"an array header gives the shape {shape}")
    needed = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if needed != size - member.tell():
        raise ValueError(f"an array header gives {needed:,} bytes of data, the member holds {size - member.tell():,}")
    array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    view = memoryview(array.reshape(-1, order="A")).cast("B") if array.size else memoryview(b"")
    while view.nbytes:
        done = member.readinto(view)
        if not done:
            raise EOFError("an array ends before its data")
        view = view[done:]
    return array


# ----------------------------------------------------------------------------------------- writing

def check_target(path: str | os.PathLike, force: bool = False) -> list[str] | None:
    """Whether a model may be written to `path`, before any work: a new or empty folder, or (force)
    one holding an intact itexlab model and nothing else. Returns the files of the model to be
    replaced (None for a new folder); TargetError says why not, TargetExistsError when the folder
    holds something that is not an intact itexlab model."""
    path = pathlib.Path(path)
    if path.is_symlink():
        raise TargetError(f"{path} is a symbolic link: give the folder itself, not a link to it")
    if path.exists() and not path.is_dir():
        raise TargetExistsError(f"{path} exists and is not a folder")
    if not path.exists():
        return None
    present = sorted(p.name for p in path.iterdir())
    if not present:
        return []
    if not force:
        raise TargetExistsError(f"{path} exists and is not empty (force=True replaces the itexlab model in it)")
    try:
        listed = [*read(path, keep=()).manifest["files"], MANIFEST]
    except ModelError as e:
        raise TargetExistsError(f"{path} holds no intact itexlab model ({e}): its files are not an itexlab model "
                                "written before, not replacing them") from None
    others = [name for name in present if name not in listed]
    if others:
        raise TargetExistsError(f"{path} also holds {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}, "
                                "which are not part of its itexlab model: not replacing anything (move them, or "
                                "save elsewhere)")
    return listed


def write(path: str | os.PathLike, plan: Plan, extra: dict[str, bytes], writer: str, force: bool = False) -> pathlib.Path:
    """Write a plan (with its arrays) and extra files into `path` (see check_target). The files are
    written to a sibling folder first and moved in only once all of them are complete, so a failure
    leaves an old model intact; of the old model, only the files its manifest listed are deleted."""
    path = pathlib.Path(path)
    replaced = check_target(path, force)
    files = {PLAN: plan.to_json().encode(), WEIGHTS: _npz(plan.arrays()), **extra}
    manifest = {"format": FORMAT, "version": VERSION, "writer": writer,
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
    staging = path.parent / f".{path.name}-{uuid.uuid4().hex[:8]}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()  # not tempfile.mkdtemp: its folder is private (0700), the model would stay so
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        if replaced is None:
            staging.rename(path)
            return path
        old = path.parent / f".{path.name}-replaced-{uuid.uuid4().hex[:8]}"
        path.rename(old)
        staging.rename(path)
    except OSError as e:
        raise TargetError(f"cannot write the model to {path}: {e.strerror or e}") from None
    finally:
        if staging.exists():
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
    for name in replaced:  # the old model's own files, checked by check_target
        (old / name).unlink(missing_ok=True)
    try:
        old.rmdir()
    except OSError:  # something was added to the folder while the new model was written
        warnings.warn(f"files added to {path} while the model was written are kept in {old}", stacklevel=3)
    return path


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    """The arrays as an .npz, refused when one holds what only pickle could store (strings)."""
    for name, value in arrays.items():
        if value.dtype.kind not in _ARRAY_KINDS or value.dtype.hasobject:
            raise ModelError(f"the model's constant {name.rsplit(':', 1)[0]!r} holds {value.dtype} values (strings or "
                             "objects): a saved itexlab model holds numbers only, keep string work out of the model")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()
