"""TF -> oneDNN Graph op translation: one rule per TF op type, as a table.

A rule turns one TF node into oneDNN op descriptions (plain `OneDnnOp` data) or refuses with a
reason in words. Quantization parameters come from the constant min/max inputs of QuantizeV2;
constant weights behind a QuantizeV2 are quantized here, once, into int8 constants, so oneDNN sees
the int8 pattern Dequantize(weights) -> Convolution and caches the packed weights.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..backend import opset
from ..ir.graph import CONSTANT_OPS, Graph, Node, TensorInfo, normalize, ref
from ..ir.plan import OneDnnOp

# What oneDNN 3.2's int8 kernels do with the weights of an op without VNNI or AMX, by the op and its
# data's type (read off ONEDNN_VERBOSE under ONEDNN_MAX_CPU_ISA=AVX512_CORE and =AVX2, and measured):
#   "int16 pairs": two products of 0..255 data and the weights as they are go into a saturating
#       int16 (vpmaddubsw): 255 * 127 * 2 > 32767 clips, silently;
#   "halved": the kernel adds 128 to s8 data and halves the weights itself, rounding odd codes.
# uint8 depthwise is neither: one input channel per group, so a pair is one product and a zero.
NON_VNNI_WEIGHTS = {
    ("Conv2D", "quint8"): "int16 pairs", ("Conv2D", "qint8"): "halved",
    ("MatMul", "quint8"): "int16 pairs", ("MatMul", "qint8"): "int16 pairs",
    ("DepthwiseConv2dNative", "qint8"): "halved",
}


def non_vnni_weights(graph: Graph, op: Node) -> str | None:
    """NON_VNNI_WEIGHTS for a weighted op, from the int8 type its data input is dequantized from."""
    source = graph.producer(op.inputs[0]) if op.inputs else None
    if source is None or source.op != "Dequantize":
        return None  # f32 data: oneDNN dequantizes the weights and computes in f32
    return NON_VNNI_WEIGHTS.get((op.op, graph.node(source.inputs[0]).attrs.get("T")))



class Untranslatable(Exception):
    """This node cannot become a oneDNN Graph op; the message says why, for the plan."""


@dataclasses.dataclass
class Translation:
    ops: list[OneDnnOp]                            # translated ops and Wildcards, in graph order
    constants: dict[str, np.ndarray]             # tensor reference -> value for constant inputs
    absorbed: set[str]                           # weight QuantizeV2 nodes folded into int8 constants
    refused: dict[str, str]                      # TF node -> why it has no translation
    tensors: dict[str, TensorInfo]               # every tensor reference the ops use

    @property
    def translated(self) -> set[str]:
        return {op.node for op in self.ops if op.kind != "Wildcard"}


# ----------------------------------------------------------------------- quantization params

def tf_range(node: Node, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The range TF's QuantizeV2 really quantizes to: it always holds 0, and it is at least
    ensure_minimum_range (default 0.01) times max(1, |range|) wide. A calibrated range of
    [0, 0.0078] is [0, 0.01] to TF."""
    lo, hi = np.atleast_1d(lo).astype(np.float64), np.atleast_1d(hi).astype(np.float64)
    if node.op != "QuantizeV2":
        return lo, hi
    epsilon = np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi))) * float(node.attrs.get("ensure_minimum_range", 0.01))
    low = np.minimum(0.0, lo)
    return low, np.maximum(0.0, np.maximum(hi, low + epsilon))


def quant_params(node: Node, lo: np.ndarray, hi: np.ndarray) -> tuple[list[float], list[int]]:
    """Scales and zero points of a QuantizeV2/Dequantize (dst = (q - zp) * scale), as TF's reference
    kernels define them."""
    dtype, mode = node.attrs["T"], node.attrs.get("mode", "MIN_COMBINED")
    lo, hi = tf_range(node, lo, hi)
    if mode == "SCALED":
        if dtype == "qint8":  # the scale that fits both ends: -128 (-127 narrow) * scale <= lo, 127 * scale >= hi
            lowest = 127.0 if node.attrs.get("narrow_range", False) else 128.0
            scale = np.maximum(np.where(lo < 0, -lo / lowest, 0.0), np.where(hi > 0, hi / 127.0, 0.0))
        else:
            scale = np.maximum(hi, 0.0) / 255.0
        zps = np.zeros(len(scale), np.int64)
    elif mode == "MIN_FIRST":
        scale = (hi - lo) / 255.0
        safe = np.where(scale > 0, scale, 1.0)
        zps = np.round(-lo / safe).astype(np.int64) - (128 if dtype == "qint8" else 0)
    else:
        raise Untranslatable(f"quantization mode {mode} has no oneDNN equivalent")
    scale = np.where(scale > 0, scale, 1.0)  # a constant-zero channel: any scale represents it
    return [float(s) for s in scale], [int(z) for z in zps]


def _qtype(node: Node, scales: list[float]) -> dict:
    axis = node.attrs.get("axis", -1)
    if axis is None or axis < 0 or len(scales) == 1:
        return {"qtype": "per_tensor"}
    return {"qtype": "per_channel", "axis": int(axis)}


def broadcast_params(node: Node, value: np.ndarray, scales: list[float], zps: list[int]):
    """Scales and zero points shaped to broadcast against the constant a QuantizeV2 quantizes."""
    info = _qtype(node, scales)
    scale, zp = np.asarray(scales, np.float64), np.asarray(zps, np.float64)
    if info["qtype"] == "per_channel":
        shape = [1] * value.ndim
        shape[info["axis"]] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return scale, zp


def quantize_constant(node: Node, value: np.ndarray, scales: list[float], zps: list[int]) -> np.ndarray:
    """What TF's QuantizeV2 computes for a constant, with the scales oneDNN will dequantize by."""
    scale, zp = broadcast_params(node, value, scales, zps)
    q = np.rint(value / scale) + zp
    lo, hi, dtype = (-128, 127, np.int8) if node.attrs["T"] == "qint8" else (0, 255, np.uint8)
    return np.clip(q, lo, hi).astype(dtype)


# ----------------------------------------------------------------------------------- context

class _Context:
    """What a rule may ask: the graph, constant values, fresh op ids; collects constants."""

    def __init__(self, graph: Graph, seven_bit_weights: bool):
        self.graph = graph
        self.seven_bit_weights = seven_bit_weights
        self.halved: set[str] = set()
        self.constants: dict[str, np.ndarray] = {}
        self.absorbed: set[str] = set()
        self.extra_tensors: dict[str, TensorInfo] = {}
        self._consumers = graph.consumers()
        self._next_id = 0

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def rank(self, reference: str) -> int:
        shape = self.graph.tensor(reference).shape
        if shape is None:
            raise Untranslatable(f"the rank of {reference} is unknown")
        return len(shape)

    def const(self, reference: str, what: str) -> np.ndarray:
        value = self.graph.constant(reference)
        if value is None:
            raise Untranslatable(f"{what} ({reference}) is not a constant")
        return value

    def use_constant(self, reference: str) -> str:
        """Mark a constant input as a oneDNN constant tensor (e.g. a bias)."""
        self.constants[normalize(reference)] = np.ascontiguousarray(self.graph.constant(reference))
        return normalize(reference)

    def op(self, kind: str, node: Node, inputs: list[str], outputs: list[str] | None = None, **attrs) -> OneDnnOp:
        return OneDnnOp(self.new_id(), kind, node.name, [normalize(i) for i in inputs],
                      outputs if outputs is not None else [node.name], attrs)

    def feeds_depthwise_weights(self, node: Node) -> bool:
        users = self._consumers.get(node.name, [])
        return any(u.op == "DepthwiseConv2dNative" and normalize(u.inputs[1]) == node.name for u in users)

    def weights_meet_int16_pairs(self, node: Node) -> bool:
        """Whether this Dequantize gives weights that oneDNN without VNNI sums in int16 pairs."""
        return any(normalize(user.inputs[1]) == node.name and non_vnni_weights(self.graph, user) == "int16 pairs"
                   for user in self._consumers.get(node.name, []) if len(user.inputs) > 1)

    def quantizer_of(self, dequantize: Node) -> Node:
        """The QuantizeV2 whose outputs a Dequantize reads, with constant min/max."""
        source = self.graph.node(dequantize.inputs[0])
        if source.op != "QuantizeV2":
            raise Untranslatable(f"its input comes from {source.op}, not QuantizeV2")
        return source


# -------------------------------------------------------------------------------------- rules

Rule = Callable[[Node, _Context], list[OneDnnOp]]
RULES: dict[str, Rule] = {}


def rule(*ops: str):
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULES[op] = fn
        return fn
    return register


def _hw(values: list[int], data_format: str) -> list[int]:
    if data_format != "NHWC":
        raise Untranslatable(f"data_format {data_format} (only NHWC is translated)")
    return [int(values[1]), int(values[2])]


def _padding(node: Node) -> dict:
    padding = node.attrs.get("padding", "VALID")
    if padding == "SAME":
        return {"auto_pad": "SAME_UPPER", "pads_begin": [0, 0], "pads_end": [0, 0]}
    if padding == "VALID":
        return {"auto_pad": "VALID", "pads_begin": [0, 0], "pads_end": [0, 0]}
    if padding == "EXPLICIT":
        p = node.attrs["explicit_paddings"]
        return {"auto_pad": "None", "pads_begin": [p[2], p[4]], "pads_end": [p[3], p[5]]}
    raise Untranslatable(f"padding {padding}")


@rule("Identity")
def _identity(node: Node, ctx: _Context) -> list[OneDnnOp]:
    raise Untranslatable("it only forwards its input; the executor aliases it, no kernel runs")


@rule("QuantizeV2")
def _quantize(node: Node, ctx: _Context) -> list[OneDnnOp]:
    lo, hi = ctx.const(node.inputs[1], "min"), ctx.const(node.inputs[2], "max")
    scales, zps = quant_params(node, lo, hi)
    value = ctx.graph.constant(node.inputs[0])
    if value is not None:
        # Weights: quantized once here; their Dequantize consumer reads an int8 constant.
        ctx.constants[node.name] = quantize_constant(node, value, scales, zps)
        ctx.absorbed.add(node.name)
        return []
    ops, source = [], node.inputs[0]
    if ctx.graph.node(source).op == "Dequantize":
        # A requantization. oneDNN fuses Dequantize -> Reorder -> Quantize into one int8 reorder;
        # Dequantize -> Quantize it leaves as two partitions, two passes through FP32.
        step = f"{node.name}/itexlab_requantize"
        ctx.extra_tensors[step] = ctx.graph.tensor(source)
        ops.append(ctx.op("Reorder", node, [source], [step]))
        source = step
    return ops + [ctx.op("Quantize", node, [source], scales=scales, zps=zps, **_qtype(node, scales))]


@rule("Dequantize")
def _dequantize(node: Node, ctx: _Context) -> list[OneDnnOp]:
    quantizer = ctx.quantizer_of(node)
    lo, hi = ctx.const(quantizer.inputs[1], "min"), ctx.const(quantizer.inputs[2], "max")
    scales, zps = quant_params(quantizer, lo, hi)
    qtype = _qtype(quantizer, scales)
    if quantizer.name in ctx.constants and ctx.feeds_depthwise_weights(node):
        scales, zps, qtype = _grouped_weights(ctx, node, quantizer, scales, zps, qtype)
    if quantizer.name in ctx.constants and ctx.seven_bit_weights and ctx.weights_meet_int16_pairs(node):
        scales = _halved_codes(ctx, quantizer, scales)
    return [ctx.op("Dequantize", node, [quantizer.name], scales=scales, zps=zps, **qtype)]


def _halved_codes(ctx: _Context, quantizer: Node, scales: list[float]) -> list[float]:
    """7-bit weights on the 8-bit grid (even codes, see qdq.seven_bit_weights) as codes of at most
    63 at twice the scale: the same values, and a pair sums to at most 255 * 63 * 2 = 32130."""
    if quantizer.name not in ctx.halved:  # weights shared by two Dequantize copies: halve once
        codes = ctx.constants[quantizer.name]
        if (codes % 2).any():
            raise ValueError(f"weights of {quantizer.name} are not 7-bit: odd int8 codes")
        ctx.constants[quantizer.name] = codes // 2
        ctx.halved.add(quantizer.name)
    return [2 * s for s in scales]


def _grouped_weights(ctx: _Context, node: Node, quantizer: Node, scales, zps, qtype):
    """Depthwise weights (H, W, C, M) become grouped-convolution weights (H, W, 1, C*M); output
    channel c*M+m takes the scale of channel c (axis 2) or multiplier m (axis 3)."""
    h, w, c, m = ctx.constants[quantizer.name].shape
    ctx.constants[quantizer.name] = ctx.constants[quantizer.name].reshape(h, w, 1, c * m)
    ctx.extra_tensors[node.name] = TensorInfo("float32", (h, w, 1, c * m))
    if qtype["qtype"] == "per_channel":
        expand = (lambda v: list(np.repeat(v, m))) if qtype["axis"] == 2 else (lambda v: list(np.tile(v, c)))
        scales, zps = [float(s) for s in expand(scales)], [int(z) for z in expand(zps)]
        qtype = {"qtype": "per_channel", "axis": 3}
    return scales, zps, qtype


@rule("Conv2D")
def _conv2d(node: Node, ctx: _Context) -> list[OneDnnOp]:
    fmt = node.attrs.get("data_format", "NHWC")
    return [ctx.op("Convolution", node, node.inputs[:2], strides=_hw(node.attrs["strides"], fmt),
                   dilations=_hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt), groups=1,
                   data_format="NXC", weights_format="XIO", **_padding(node))]


@rule("DepthwiseConv2dNative")
def _depthwise(node: Node, ctx: _Context) -> list[OneDnnOp]:
    """Depthwise = grouped convolution with groups = C and XIO weights of shape (H, W, 1, C*M)."""
    fmt = node.attrs.get("data_format", "NHWC")
    weights_ref = normalize(node.inputs[1])
    source = ctx.graph.node(weights_ref)
    if source.op == "Dequantize":
        if ctx.quantizer_of(source).name not in ctx.constants:
            raise Untranslatable("depthwise weights are not quantized constants")
        c = ctx.graph.tensor(weights_ref).shape[2]  # the Dequantize rule regrouped them already
        weights = weights_ref
    else:
        value = ctx.const(weights_ref, "depthwise weights")
        h, w, c, m = value.shape
        weights = f"{node.name}/grouped_weights"
        ctx.constants[weights] = np.ascontiguousarray(value.reshape(h, w, 1, c * m))
        ctx.extra_tensors[weights] = TensorInfo(str(value.dtype), (h, w, 1, c * m))
    return [ctx.op("Convolution", node, [node.inputs[0], weights], strides=_hw(node.attrs["strides"], fmt),
                   dilations=_hw(node.attrs.get("dilations", [1, 1, 1, 1]), fmt), groups=int(c),
                   data_format="NXC", weights_format="XIO", **_padding(node))]


@rule("MatMul")
def _matmul(node: Node, ctx: _Context) -> list[OneDnnOp]:
    return [ctx.op("MatMul", node, node.inputs[:2], transpose_a=bool(node.attrs.get("transpose_a", False)),
                   transpose_b=bool(node.attrs.get("transpose_b", False)))]


@rule("BiasAdd")
def _bias_add(node: Node, ctx: _Context) -> list[OneDnnOp]:
    bias = node.inputs[1]
    if ctx.graph.is_constant(bias):
        bias = ctx.use_constant(bias)
    return [ctx.op("BiasAdd", node, [node.inputs[0], bias],
                   data_format="NXC" if node.attrs.get("data_format", "NHWC") == "NHWC" else "NCX")]


@rule("Relu")
def _relu(node: Node, ctx: _Context) -> list[OneDnnOp]:
    return [ctx.op("ReLU", node, node.inputs[:1])]


@rule("Relu6")
def _relu6(node: Node, ctx: _Context) -> list[OneDnnOp]:
    return [ctx.op("Clamp", node, node.inputs[:1], min=0.0, max=6.0)]


@rule("Add", "AddV2", "Mul")
def _binary(node: Node, ctx: _Context) -> list[OneDnnOp]:
    if node.attrs.get("T") != "float32":
        raise Untranslatable(f"{node.op} on {node.attrs.get('T')} (only float32 is translated)")
    inputs = [ctx.use_constant(i) if ctx.graph.is_constant(i) else i for i in node.inputs]
    return [ctx.op("Multiply" if node.op == "Mul" else "Add", node, inputs, auto_broadcast="numpy")]


@rule("MaxPool", "AvgPool")
def _pool(node: Node, ctx: _Context) -> list[OneDnnOp]:
    fmt = node.attrs.get("data_format", "NHWC")
    attrs = dict(kernel=_hw(node.attrs["ksize"], fmt), strides=_hw(node.attrs["strides"], fmt),
                 data_format="NXC", rounding_type="floor", **_padding(node))
    if node.op == "AvgPool":
        attrs["exclude_pad"] = True  # TF averages SAME-padded windows over their valid elements only
    else:
        attrs["dilations"] = [1, 1]
    return [ctx.op(node.op, node, node.inputs[:1], **attrs)]


@rule("ConcatV2")
def _concat(node: Node, ctx: _Context) -> list[OneDnnOp]:
    axis = int(ctx.const(node.inputs[-1], "concat axis"))
    values = node.inputs[:-1]
    if any(ctx.graph.is_constant(v) for v in values):
        raise Untranslatable("concatenates a constant")
    if axis < 0:
        axis += ctx.rank(values[0])
    return [ctx.op("Concat", node, values, axis=axis)]


@rule("Reshape")
def _reshape(node: Node, ctx: _Context) -> list[OneDnnOp]:
    # oneDNN 3.2 reports [Dequantize, MaxPool, StaticReshape, Quantize] as a supported partition and
    # then fails to compile it; a reshape of a plain tensor is free anyway: the executor runs it
    # as a zero-copy view (see partition.runs_as_view).
    ctx.const(node.inputs[1], "target shape")
    raise Untranslatable("a Reshape runs as a zero-copy view in the executor, outside oneDNN")


@rule("Transpose")
def _transpose(node: Node, ctx: _Context) -> list[OneDnnOp]:
    order = [int(d) for d in ctx.const(node.inputs[1], "permutation")]
    return [ctx.op("StaticTranspose", node, node.inputs[:1], order=order)]


@rule("Softmax")
def _softmax(node: Node, ctx: _Context) -> list[OneDnnOp]:
    return [ctx.op("SoftMax", node, node.inputs[:1], axis=ctx.rank(node.inputs[0]) - 1)]


@rule("Mean", "Sum", "Max", "Min")
def _reduce(node: Node, ctx: _Context) -> list[OneDnnOp]:
    axes = np.atleast_1d(ctx.const(node.inputs[1], "reduction axes")).astype(int)
    rank = ctx.rank(node.inputs[0])
    kind = {"Mean": "ReduceMean", "Sum": "ReduceSum", "Max": "ReduceMax", "Min": "ReduceMin"}[node.op]
    return [ctx.op(kind, node, node.inputs[:1], axes=[int(a % rank) for a in axes],
                   keep_dims=bool(node.attrs.get("keep_dims", False)))]


# ----------------------------------------------------------------------------------- driver

def translate(graph: Graph, seven_bit_weights: bool = False, refuse: dict[str, str] | None = None) -> Translation:
    """Translate every node that has a rule; the rest (non-constant) become Wildcards.

    seven_bit_weights: the graph's Conv2D/MatMul weights are on the 7-bit grid; give oneDNN those
    it would sum in int16 pairs as they are as codes of at most 63 (see `_halved_codes`).
    refuse: nodes to leave untranslated, with the reason (oneDNN refused their ops before).
    """
    ctx = _Context(graph, seven_bit_weights)
    translated: list[tuple[Node, list[OneDnnOp]]] = []
    refused: dict[str, str] = {}
    for node in graph.nodes:
        if node.op in CONSTANT_OPS or node.op == "Placeholder":
            continue
        translate_node = RULES.get(node.op)
        if node.name in (refuse or {}):
            refused[node.name] = refuse[node.name]
        elif translate_node is None:
            refused[node.name] = f"op {node.op} has no oneDNN Graph translation"
        else:
            try:
                new_ops = translate_node(node, ctx)
                unknown = [r for op in new_ops for r in op.inputs + op.outputs
                           if _tensor_info(graph, ctx, r).shape is None]
                if unknown:
                    raise Untranslatable(f"the rank of {unknown[0]} is unknown")
                translated.append((node, new_ops))
                continue
            except Untranslatable as why:
                refused[node.name] = f"{node.op} not translated: {why}"
        translated.append((node, [_wildcard(node, ctx)]))
    tensors = {r: _tensor_info(graph, ctx, r) for _, new_ops in translated for op in new_ops
               for r in op.inputs + op.outputs}
    for r, value in ctx.constants.items():
        tensors[r] = TensorInfo(_tf_dtype_of(value), tuple(value.shape))
    ops: list[OneDnnOp] = []
    for node, new_ops in translated:
        try:  # the rules oneDNN's ops must meet, as the boundary will check them (opset)
            ops += [opset.checked(op, tensors) for op in new_ops]
        except opset.InvalidOp as why:
            refused[node.name] = f"{node.op} not translated: oneDNN would refuse it: {why}"
            ops.append(_wildcard(node, ctx))
    ops = [op for op in ops if op.kind != "Wildcard" or op.inputs or op.outputs]
    return Translation(ops, ctx.constants, ctx.absorbed, refused, tensors)


def _tf_dtype_of(value: np.ndarray) -> str:
    return {"int8": "qint8", "uint8": "quint8"}.get(value.dtype.name, value.dtype.name)


def _tensor_info(graph: Graph, ctx: _Context, reference: str) -> TensorInfo:
    if reference in ctx.extra_tensors:
        return ctx.extra_tensors[reference]
    return graph.tensor(reference)


def _wildcard(node: Node, ctx: _Context) -> OneDnnOp:
    """An untranslated op, so oneDNN knows which tensors are also produced/consumed outside."""
    def usable(r: str) -> bool:
        return not ctx.graph.is_constant(r) and opset.tensor_problem(ctx.graph.tensor(r)) is None
    outputs = [ref(node.name, i) for i in range(len(node.outputs))]
    return OneDnnOp(ctx.new_id(), "Wildcard", node.name, [normalize(r) for r in node.inputs if usable(r)],
                  [r for r in outputs if usable(r)])

