"""The oneDNN boundary: loads the native module and feeds it translated ops as plain data."""

from __future__ import annotations

import ctypes
import dataclasses
import importlib.metadata
import os
import pathlib
from collections.abc import Collection, Mapping, Sequence

from ..errors import ModelError
from ..ir.graph import TensorInfo
from ..ir.plan import OneDnnOp
from . import cpu, opset
from .opset import ONEDNN_DTYPES  # noqa: F401  (the stages above ask the boundary)


def _preload_libdnnl() -> None:
    """Load libdnnl.so.3 from the onednn-cpu-gomp wheel, wherever pip put it (RPATH may not reach)."""
    try:
        dist = importlib.metadata.distribution("onednn-cpu-gomp")
    except importlib.metadata.PackageNotFoundError:
        return  # the RPATH or the system loader has to find it
    for f in dist.files or []:
        if pathlib.PurePath(f).name == "libdnnl.so.3":
            ctypes.CDLL(str(dist.locate_file(f)), mode=ctypes.RTLD_GLOBAL)
            return


cpu.configure_openmp()  # before libdnnl brings in libgomp, which reads it once
_preload_libdnnl()
from . import _native  # noqa: E402

VERSION = _native.onednn_version()
CompileError = _native.CompileError  # oneDNN cannot compile a partition for the input shapes given


def failed_step(error: Exception) -> str:
    """The name of the step a CompileError is about (the native message begins with it)."""
    return str(error).split("'", 2)[1]

CONSTANT_CACHE_ENV = "ONEDNN_GRAPH_CONSTANT_TENSOR_CACHE_CAPACITY"


def configure_constant_cache() -> None:
    """Keep constant tensors (weights) in their compiled layout across runs. oneDNN 3.2 does so by
    default; later releases do not (oneDNN 3.7, built here, re-ordered Inception V3's weights on
    every run: 4.5 ms of reorders, 21 ms instead of 16.5 at batch 1). A user's own capacity wins."""
    if CONSTANT_CACHE_ENV not in os.environ:
        _native.set_constant_tensor_cache(True)


configure_constant_cache()

# oneDNN's int8 kernels on these instruction sets multiply u8 x s8 pairs with vpmaddubsw, which adds
# two products into a saturating int16 (255 * 127 * 2 > 32767): see oneDNN's "Nuances of int8
# computations". VNNI (vpdpbusd) and AMX accumulate in int32 and never clip.
INT16_PAIR_ISAS = ("SSE41", "AVX", "AVX2", "AVX512_CORE")


def effective_isa() -> str:
    """The instruction set oneDNN runs its kernels for here, as ONEDNN_MAX_CPU_ISA spells it: the
    CPU's own, or less when that variable caps it."""
    return _native.effective_cpu_isa()


def int8_pairs_saturate(isa: str | None = None) -> bool:
    """Whether oneDNN's int8 convolutions and matmuls sum pairs of products in int16 on this ISA."""
    return (isa or effective_isa()) in INT16_PAIR_ISAS


def int8_softmax_is_reference(isa: str | None = None) -> bool:
    """Whether oneDNN 3.2 runs a SoftMax with an int8 output with its reference kernel on this ISA
    (measured under ONEDNN_MAX_CPU_ISA=AVX2: 9.5 ms for 12x128x128, 0.08 ms under AVX512_CORE; its
    f32 softmax is a JIT kernel on both)."""
    return not (isa or effective_isa()).startswith("AVX512")


@dataclasses.dataclass(frozen=True)
class OneDnnPartition:
    index: int            # oneDNN's own partition index (used to compile it)
    supported: bool
    op_ids: list[int]
    inputs: list[str]     # tensor references in oneDNN's port order
    outputs: list[str]


@dataclasses.dataclass
class PartitionedGraph:
    native: object                    # _native.OneDnnGraph, kept alive for compilation
    partitions: list[OneDnnPartition]
    tensor_ids: dict[str, int]        # tensor reference -> logical tensor id
    tensors: Mapping[str, TensorInfo]
    constants: Collection[str]        # references of constant tensors


def partition(ops: Sequence[OneDnnOp], tensors: Mapping[str, TensorInfo], constants: Collection[str],
              policy: str = "fusion") -> PartitionedGraph:
    """Build a oneDNN graph of these ops and let oneDNN choose the partitions. Every op is checked by
    the rule of its kind first (opset.checked: InvalidOp, a ModelError, names what breaks it), and
    what oneDNN itself refuses is a ModelError too."""
    ops = [opset.checked(op, tensors) for op in ops]
    ids: dict[str, int] = {}

    def spec(reference: str):
        ids.setdefault(reference, len(ids) + 1)
        return _tensor_spec(tensors[reference], ids[reference], reference in constants)

    graph = _native.OneDnnGraph()
    for op in ops:
        try:
            graph.add_op(op.id, op.kind, [spec(r) for r in op.inputs], [spec(r) for r in op.outputs], op.attrs,
                         op.node)
        except RuntimeError as e:  # dnnl::error: oneDNN's own schema check refuses the op
            raise opset.InvalidOp(f"oneDNN {'.'.join(map(str, VERSION))} refuses op {op.id} ({op.kind}, from "
                                  f"{op.node!r}): {e}", op.node) from None
    try:
        found = graph.partition(policy)
    except RuntimeError as e:  # dnnl::error: oneDNN refuses the graph (e.g. a tensor written by two ops)
        raise ModelError(f"oneDNN {'.'.join(map(str, VERSION))} refuses the graph: {e}") from None
    by_id = {v: k for k, v in ids.items()}
    parts = [OneDnnPartition(p.index, p.supported, list(p.op_ids), [by_id[i] for i in p.input_ids],
                             [by_id[i] for i in p.output_ids]) for p in found]
    return PartitionedGraph(graph, parts, ids, tensors, constants)


def _tensor_spec(info: TensorInfo, tensor_id: int, constant: bool, batch: int | None = None):
    dims = [-1 if d is None else int(d) for d in info.shape]
    if batch is not None and dims and dims[0] == -1:
        dims[0] = batch
    return _native.TensorSpec(tensor_id, ONEDNN_DTYPES[info.dtype], dims, constant)


def compile_error(partitioned: PartitionedGraph, part: OneDnnPartition) -> str | None:
    """Why oneDNN cannot compile a partition at batch 1 ("" when it can), or None when the shapes
    are not known beyond the batch (it is then first compiled when the model runs)."""
    specs = [_tensor_spec(partitioned.tensors[r], partitioned.tensor_ids[r], r in partitioned.constants, batch=1)
             for r in part.inputs]
    if any(d < 0 for s in specs for d in s.dims):
        return None
    return partitioned.native.compile_error(part.index, specs)


def program(partitioned: PartitionedGraph, steps, input_ids, output_ids, dtypes, constants, opaque_ids,
            shapes_per_step: int):
    """The native executor for an ordered list of steps (see itexlab.runtime.schedule)."""
    native_steps = [_native.StepSpec(s.kind, s.partition, s.callback, s.inputs, s.outputs, s.label, s.view_shape,
                                     s.concat_axis) for s in steps]
    return _native.Program(partitioned.native, native_steps, input_ids, output_ids, dtypes, constants,
                           opaque_ids, shapes_per_step)
