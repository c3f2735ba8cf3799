"""The oneDNN Graph ops itexlab hands to oneDNN, and the rules each must meet first.

oneDNN trusts its caller: a convolution with groups=0 divides by zero (SIGFPE, the process dies), a
stride of 0 or a scale list shorter than the channels reads out of bounds. Plans come from make_plan
and from folders that may come from a stranger, so every op is checked here, by the rule of its
kind, before the native module sees it: the number of inputs and outputs, their data types and
ranks, every attribute's type and range, and the shapes that must agree (weights and channels,
broadcasting, scales per channel). The attributes come back in the types the native module reads
(a float list as floats even if JSON wrote 1 for 1.0). Adding an op kind is one entry in RULES.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Sequence

from ..errors import ModelError
from ..ir.graph import TensorInfo
from ..ir.plan import OneDnnOp

# TF dtype -> oneDNN data type, for the tensors oneDNN can take.
ONEDNN_DTYPES = {"float32": "f32", "qint8": "s8", "quint8": "u8", "int32": "s32", "bfloat16": "bf16",
                 "int8": "s8", "uint8": "u8"}
INT8_RANGE = {"s8": (-128, 127), "u8": (0, 255)}
MAX_DIM = 2**31 - 1
MAX_ELEMENTS = 2**40


class InvalidOp(ModelError):
    """An op oneDNN must not be given: the message names the op and the rule it breaks; `node` is
    the TF node it comes from."""

    def __init__(self, message: str, node: str = ""):
        super().__init__(message)
        self.node = node


# --------------------------------------------------------------------------- attribute checks

Attr = Callable[[object, "Context"], object]  # returns the value in the type the native module reads


@dataclasses.dataclass
class Context:
    """What an attribute or shape check may ask about the op it checks."""

    op: OneDnnOp
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def rank(self, index: int = 0) -> int:
        return len(self.inputs[index].shape)

    def spatial(self) -> int:
        """Spatial dimensions of the first input (N, C and the rest)."""
        return self.rank() - 2


def _fail(message: str):
    raise ValueError(message)


def _int(value, low=-MAX_DIM, high=MAX_DIM) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(f"{value!r} is not an integer in [{low}, {high}]")
    return value


def _float(value, finite=True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (finite and not math.isfinite(value)):
        _fail(f"{value!r} is not a finite number")
    return float(value)


def _list(value) -> list:
    if not isinstance(value, (list, tuple)):
        _fail(f"{value!r} is not a list")
    return list(value)


def boolean(value, ctx) -> bool:
    if not isinstance(value, bool):
        _fail(f"{value!r} is not true or false")
    return value


def one_of(*choices: str) -> Attr:
    def check(value, ctx):
        if value not in choices:
            _fail(f"{value!r} is not one of {', '.join(choices)}")
        return value
    return check


def number(value, ctx) -> float:
    return _float(value)


def spatial_ints(low: int) -> Attr:
    """One integer >= low per spatial dimension (strides, dilations, pads, kernel)."""
    def check(value, ctx):
        _spatial_data(ctx)
        values = [_int(v, low) for v in _list(value)]
        if len(values) != ctx.spatial():
            _fail(f"{values} has {len(values)} values for {ctx.spatial()} spatial dimensions")
        return values
    return check


def axis_of(index: int = 0) -> Attr:
    """An axis of input `index`, negative counting from the end as oneDNN allows."""
    def check(value, ctx):
        rank = ctx.rank(index)
        return _int(value, -rank, rank - 1)
    return check


def axes(value, ctx) -> list[int]:
    rank = ctx.rank()
    values = [_int(v, -rank, rank - 1) for v in _list(value)]
    if not values or len({v % rank for v in values}) != len(values):
        _fail(f"{values} are not distinct axes of a rank-{rank} tensor")
    return values


def permutation(value, ctx) -> list[int]:
    values = [_int(v, 0, ctx.rank() - 1) for v in _list(value)]
    if sorted(values) != list(range(ctx.rank())):
        _fail(f"{values} is not a permutation of the {ctx.rank()} axes")
    return values


def scales(value, ctx) -> list[float]:
    values = [_float(v) for v in _list(value)]
    if not values or any(v <= 0 for v in values):
        _fail("scales must be a non-empty list of positive numbers")
    return values


def zero_points(value, ctx) -> list[int]:
    quantized = ctx.outputs[0] if ctx.op.kind == "Quantize" else ctx.inputs[0]
    low, high = INT8_RANGE.get(ONEDNN_DTYPES[quantized.dtype], (-MAX_DIM, MAX_DIM))  # the type: _quantization
    return [_int(v, low, high) for v in _list(value)]


def shape_attr(value, ctx) -> list[int]:
    return [_int(v, -1) for v in _list(value)]


# ------------------------------------------------------------------------------ shape checks

def _known(a, b) -> bool:
    return a is None or b is None or a == b


def _channels(ctx: Context, index: int = 0):
    """The channel dimension of an NXC (channels last) or NCX tensor."""
    shape = ctx.inputs[index].shape
    return shape[-1] if ctx.op.attrs.get("data_format", "NXC") == "NXC" else shape[1]


def _convolution(ctx: Context) -> None:
    """Weights (spatial..., in / groups, out) in XIO, (out, in / groups, spatial...) in OIX."""
    weights = ctx.inputs[1].shape if ctx.rank() >= 3 and ctx.rank(1) == ctx.rank() else ()
    xio = ctx.op.attrs.get("weights_format", "XIO") == "XIO"
    _weighted(ctx, *((weights[-2], weights[-1]) if xio else (weights[1:2] + weights[:1])))


def _conv_transpose(ctx: Context) -> None:
    """Weights (spatial..., out, in / groups) in XOI, (in / groups, out, spatial...) in IOX."""
    weights = ctx.inputs[1].shape if ctx.rank() >= 3 and ctx.rank(1) == ctx.rank() else ()
    xoi = ctx.op.attrs.get("weights_format", "XOI") == "XOI"
    _weighted(ctx, *((weights[-1], weights[-2]) if xoi else (weights[0], weights[1])))


def _weighted(ctx: Context, inputs=None, outputs=None) -> None:
    """What a convolution and a transposed one share: data and weights of one rank, weights that fit
    the data's channels in the op's groups, and a bias of one value per output channel."""
    if ctx.rank() < 3 or ctx.rank(1) != ctx.rank():
        _fail(f"data of rank {ctx.rank()} and weights of rank {ctx.rank(1)}")
    weights, groups = ctx.inputs[1].shape, ctx.op.attrs.get("groups", 1)
    kernel = weights[:-2] if ctx.op.attrs.get("weights_format", "X")[0] == "X" else weights[2:]
    if any(k is None for k in (inputs, outputs, *kernel)):
        _fail("the weights' shape is not known")
    if outputs % groups or not _known(_channels(ctx), inputs * groups):
        _fail(f"{groups} groups do not divide {_channels(ctx)} input channels into weights of shape {weights}")
    if len(ctx.inputs) == 3 and ctx.inputs[2].shape != (outputs,):
        _fail(f"a bias of shape {ctx.inputs[2].shape} for {outputs} output channels")


def _spatial_data(ctx: Context) -> None:
    if ctx.rank() < 3:
        _fail(f"data of rank {ctx.rank()} has no spatial dimensions")


def _matmul(ctx: Context) -> None:
    a, b = ctx.inputs[0].shape, ctx.inputs[1].shape
    if len(a) < 1 or len(b) < 1:
        _fail("matmul of a scalar")
    k_a = a[-2 if ctx.op.attrs.get("transpose_a") and len(a) > 1 else -1]
    k_b = b[-1 if ctx.op.attrs.get("transpose_b") and len(b) > 1 else (-2 if len(b) > 1 else 0)]
    if not _known(k_a, k_b):
        _fail(f"inner dimensions differ: {a} by {b}")


def _broadcast(ctx: Context) -> None:
    a, b = ctx.inputs[0].shape, ctx.inputs[1].shape
    if ctx.op.attrs.get("auto_broadcast", "numpy") == "none":
        if len(a) != len(b) or not all(_known(x, y) for x, y in zip(a, b)):
            _fail(f"shapes {a} and {b} differ and auto_broadcast is none")
        return
    for x, y in zip(reversed(a), reversed(b)):
        if x is not None and y is not None and x != y and 1 not in (x, y):
            _fail(f"shapes {a} and {b} do not broadcast")


def _bias(ctx: Context) -> None:
    if ctx.rank(1) != 1 or not _known(ctx.inputs[1].shape[0], _channels(ctx)):
        _fail(f"a bias of shape {ctx.inputs[1].shape} for data of shape {ctx.inputs[0].shape}")


def _concat(ctx: Context) -> None:
    axis = ctx.op.attrs["axis"] % ctx.rank()
    for info in ctx.inputs[1:]:
        if len(info.shape) != ctx.rank() or not all(
                i == axis or _known(x, y) for i, (x, y) in enumerate(zip(info.shape, ctx.inputs[0].shape))):
            _fail(f"inputs of shapes {ctx.inputs[0].shape} and {info.shape} do not concatenate on axis {axis}")


def _quantization(ctx: Context) -> None:
    attrs, quantized = ctx.op.attrs, (ctx.outputs[0] if ctx.op.kind == "Quantize" else ctx.inputs[0])
    floats = ctx.inputs[0] if ctx.op.kind == "Quantize" else ctx.outputs[0]
    if ONEDNN_DTYPES[quantized.dtype] not in INT8_RANGE or ONEDNN_DTYPES[floats.dtype] != "f32":
        _fail(f"{ctx.op.kind} between {ctx.inputs[0].dtype} and {ctx.outputs[0].dtype}")
    count = len(attrs["scales"])
    if len(attrs["zps"]) != count:
        _fail(f"{count} scales and {len(attrs['zps'])} zero points")
    if attrs["qtype"] == "per_tensor":
        if count != 1:
            _fail(f"a per-tensor quantization with {count} scales")
        return
    if "axis" not in attrs:
        _fail("a per-channel quantization without an axis")
    size = ctx.inputs[0].shape[attrs["axis"]]
    if size is None or size != count:
        _fail(f"{count} scales for axis {attrs['axis']} of size {size}")


def _layer_norm(ctx: Context) -> None:
    attrs = ctx.op.attrs
    if attrs.get("keep_stats", True):
        _fail("keep_stats must be false: itexlab takes the normalized tensor alone")
    axis = attrs.get("begin_norm_axis", -1) % ctx.rank()
    normalized = ctx.inputs[0].shape[axis:]
    if attrs.get("use_affine", True) != (len(ctx.inputs) == 3):
        _fail(f"use_affine {attrs.get('use_affine', True)} with {len(ctx.inputs)} inputs")
    for info in ctx.inputs[1:]:
        if info.shape != normalized:
            _fail(f"a scale or shift of shape {info.shape} for normalized dimensions {normalized}")


def _same_shape(ctx: Context) -> None:
    if ctx.inputs[0].shape != ctx.outputs[0].shape:
        _fail(f"input of shape {ctx.inputs[0].shape}, output of shape {ctx.outputs[0].shape}")


# --------------------------------------------------------------------------------------- rules

@dataclasses.dataclass(frozen=True)
class Rule:
    inputs: tuple[int, int]                             # fewest and most inputs
    outputs: int = 1
    attrs: Mapping[str, Attr] = dataclasses.field(default_factory=dict)  # every attribute it may have
    required: tuple[str, ...] = ()
    shapes: Sequence[Callable[[Context], None]] = ()
    dtypes: tuple[str, ...] = ("f32", "bf16")           # oneDNN types its tensors may have (int8: by Dequantize)


_FORMAT = {"data_format": one_of("NXC", "NCX")}
_PADDING = {"pads_begin": spatial_ints(0), "pads_end": spatial_ints(0),
            "auto_pad": one_of("None", "SAME_UPPER", "SAME_LOWER", "VALID")}
_POOL = {**_FORMAT, **_PADDING, "kernel": spatial_ints(1), "strides": spatial_ints(1),
         "rounding_type": one_of("floor", "ceil")}
_CONV = {**_FORMAT, **_PADDING, "strides": spatial_ints(1), "dilations": spatial_ints(1),
         "groups": lambda v, ctx: _int(v, 1)}
_CONV_REQUIRED = ("strides", "dilations", "pads_begin", "pads_end")
_ELEMENTWISE = Rule((1, 1), shapes=(_same_shape,))
_BINARY = Rule((2, 2), attrs={"auto_broadcast": one_of("none", "numpy")}, shapes=(_broadcast,))
_QUANTIZATION = Rule((1, 1), attrs={"qtype": one_of("per_tensor", "per_channel"), "axis": axis_of(),
                                    "scales": scales, "zps": zero_points},
                     required=("qtype", "scales", "zps"), shapes=(_same_shape, _quantization), dtypes=("f32", "u8", "s8"))
_REDUCE = Rule((1, 1), attrs={"axes": axes, "keep_dims": boolean}, required=("axes",))

RULES: dict[str, Rule] = {
    "Convolution": Rule((2, 3), attrs={**_CONV, "weights_format": one_of("XIO", "OIX")}, required=_CONV_REQUIRED,
                        shapes=(_convolution,)),
    "ConvTranspose": Rule((2, 3), attrs={**_CONV, "output_padding": spatial_ints(0),
                                         "weights_format": one_of("XOI", "IOX")},
                          required=_CONV_REQUIRED, shapes=(_conv_transpose,)),
    "Interpolate": Rule((1, 1), attrs={**_FORMAT, "mode": one_of("nearest", "linear", "bilinear"),
                                       "sizes": spatial_ints(1),
                                       "coordinate_transformation_mode": one_of("half_pixel", "align_corners")},
                        required=("mode", "sizes"), shapes=(_spatial_data,)),
    "MatMul": Rule((2, 3), attrs={"transpose_a": boolean, "transpose_b": boolean}, shapes=(_matmul,)),
    "BiasAdd": Rule((2, 2), attrs=_FORMAT, shapes=(_bias,)),
    "MaxPool": Rule((1, 1), attrs={**_POOL, "dilations": spatial_ints(1)}, required=("kernel", "strides"),
                    shapes=(_spatial_data,)),
    "AvgPool": Rule((1, 1), attrs={**_POOL, "exclude_pad": boolean}, required=("kernel", "strides", "exclude_pad"),
                    shapes=(_spatial_data,)),
    "Concat": Rule((1, 64), attrs={"axis": axis_of()}, required=("axis",), shapes=(_concat,)),
    "StaticTranspose": Rule((1, 1), attrs={"order": permutation}, required=("order",)),
    "StaticReshape": Rule((1, 1), attrs={"shape": shape_attr, "special_zero": boolean},
                          required=("shape", "special_zero")),
    "SoftMax": Rule((1, 1), attrs={"axis": axis_of()}, shapes=(_same_shape,)),
    "ReduceMean": _REDUCE, "ReduceSum": _REDUCE, "ReduceMax": _REDUCE, "ReduceMin": _REDUCE,
    "ReLU": _ELEMENTWISE, "Sigmoid": _ELEMENTWISE, "Tanh": _ELEMENTWISE, "GELU": _ELEMENTWISE,
    "HardSwish": _ELEMENTWISE, "Exp": _ELEMENTWISE, "Sqrt": _ELEMENTWISE, "Square": _ELEMENTWISE,
    "Abs": _ELEMENTWISE,
    "Elu": Rule((1, 1), attrs={"alpha": number}, required=("alpha",), shapes=(_same_shape,)),
    "LeakyReLU": Rule((1, 1), attrs={"alpha": number}, required=("alpha",), shapes=(_same_shape,)),
    "HardSigmoid": Rule((1, 1), attrs={"alpha": number, "beta": number}, required=("alpha", "beta"),
                        shapes=(_same_shape,)),
    "LayerNorm": Rule((1, 3), attrs={"begin_norm_axis": axis_of(), "epsilon": number, "keep_stats": boolean,
                                     "use_affine": boolean},
                      required=("keep_stats", "epsilon"), shapes=(_same_shape, _layer_norm)),
    "Clamp": Rule((1, 1), attrs={"min": number, "max": number}, required=("min", "max"),
                  shapes=(_same_shape,
                          lambda ctx: ctx.op.attrs["min"] <= ctx.op.attrs["max"] or _fail("min above max"))),
    "Add": _BINARY, "Multiply": _BINARY, "Subtract": _BINARY, "Maximum": _BINARY, "Minimum": _BINARY,
    "Divide": _BINARY, "SquaredDifference": _BINARY,
    "Quantize": _QUANTIZATION, "Dequantize": _QUANTIZATION,
    "Reorder": Rule((1, 1), shapes=(_same_shape,), dtypes=("f32", "bf16", "u8", "s8")),
    "TypeCast": Rule((1, 1), shapes=(_same_shape,)),
}
WILDCARD = "Wildcard"  # an op outside oneDNN: any tensors, no attributes


def tensor_problem(info: TensorInfo) -> str | None:
    """What makes a tensor unfit for oneDNN, or None: a type it has not, an unknown rank, a
    dimension that is not a positive integer, or more elements than any real tensor."""
    if info.dtype not in ONEDNN_DTYPES:
        return f"has the type {info.dtype}, which oneDNN has not"
    if not isinstance(info.shape, tuple):
        return "has an unknown rank"
    if len(info.shape) > 8 or any(d is not None and (isinstance(d, bool) or not isinstance(d, int)
                                                     or not 1 <= d <= MAX_DIM) for d in info.shape):
        return f"has the shape {info.shape}"
    if math.prod(d for d in info.shape if d is not None) > MAX_ELEMENTS:
        return f"has the shape {info.shape}, too large for any tensor"
    return None


def checked(op: OneDnnOp, tensors: Mapping[str, TensorInfo]) -> OneDnnOp:
    """The op with its attributes in the types the native module reads, or InvalidOp naming the rule
    it breaks."""
    what = f"oneDNN op {op.id!r} ({str(op.kind)[:40]}, from {str(op.node)[:200]!r})"
    if isinstance(op.id, bool) or not isinstance(op.id, int) or not 0 <= op.id < 2**62:
        raise InvalidOp(f"{what} has an id that is not a small non-negative integer", str(op.node))
    if not (isinstance(op.kind, str) and isinstance(op.node, str) and isinstance(op.attrs, dict)
            and all(isinstance(refs, list) and all(isinstance(r, str) for r in refs) for refs in (op.inputs, op.outputs))):
        raise InvalidOp(f"{what} is not an op description (kind, node, lists of tensor names, attributes)", str(op.node))
    infos = []
    for reference in [*op.inputs, *op.outputs]:
        info = tensors.get(reference)
        problem = "is not described" if info is None else tensor_problem(info)
        if problem:
            raise InvalidOp(f"{what}: its tensor {reference!r} {problem}", op.node)
        infos.append(info)
    if op.kind == WILDCARD:
        if op.attrs:
            raise InvalidOp(f"{what} has attributes", op.node)
        return op
    rule = RULES.get(op.kind)
    if rule is None:
        raise InvalidOp(f"{what}: itexlab hands oneDNN no op of kind {op.kind!r}", op.node)
    if not rule.inputs[0] <= len(op.inputs) <= rule.inputs[1] or len(op.outputs) != rule.outputs:
        raise InvalidOp(f"{what} has {len(op.inputs)} inputs and {len(op.outputs)} outputs; a {op.kind} takes "
                        f"{rule.inputs[0]}-{rule.inputs[1]} and gives {rule.outputs}", op.node)
    wrong = sorted({info.dtype for info in infos if ONEDNN_DTYPES[info.dtype] not in rule.dtypes})
    if wrong:
        raise InvalidOp(f"{what}: oneDNN's {op.kind} takes no {', '.join(wrong)} tensors", op.node)
    ctx = Context(op, infos[:len(op.inputs)], infos[len(op.inputs):])
    unknown = set(op.attrs) - set(rule.attrs)
    missing = set(rule.required) - set(op.attrs)
    if unknown or missing:
        raise InvalidOp(f"{what}: " + "; ".join(
            ([f"attributes {sorted(unknown)} are not a {op.kind}'s"] if unknown else [])
            + ([f"it lacks {sorted(missing)}"] if missing else [])), op.node)
    attrs = {}
    for name, value in op.attrs.items():
        try:
            attrs[name] = rule.attrs[name](value, ctx)
        except (ValueError, TypeError, IndexError) as e:
            raise InvalidOp(f"{what}: attribute {name}: {e}", op.node) from None
    ctx.op = dataclasses.replace(op, attrs=attrs)
    for check in rule.shapes:
        try:
            check(ctx)
        except (ValueError, IndexError, TypeError, ZeroDivisionError) as e:
            raise InvalidOp(f"{what}: {e}", op.node) from None
    return ctx.op
