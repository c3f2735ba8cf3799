"""Patterns: groups of TF ops that compute one oneDNN op.

Keras 3 writes LayerNormalization as eleven elementwise ops and reductions, exact GELU as
0.5·x·erfc(−x/√2), hard swish as x·relu6(x+3)/6: oneDNN has one op for each, which it fuses after
a matmul or convolution. Elementwise groups are recognised by what they compute, not by how they
are written: a group of elementwise ops with scalar constants and one tensor input is evaluated on
sample values and compared with the function (so 0.5·x·(1+erf(x/√2)), x·0.5·erfc(−x·0.7071...)
and their reorderings all match). LayerNorm's reductions are matched by structure.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf, erfc

from ...ir.graph import Node, normalize
from ...ir.plan import OneDnnOp
from .base import Context, pattern

# Elementwise TF ops a recognised group may hold, as numpy computes them.
_NUMPY = {"Mul": np.multiply, "AddV2": np.add, "Add": np.add, "Sub": np.subtract, "RealDiv": np.divide,
          "Neg": np.negative, "Erf": erf, "Erfc": erfc, "Relu6": lambda x: np.clip(x, 0.0, 6.0),
          "Relu": lambda x: np.maximum(x, 0.0), "Maximum": np.maximum, "Minimum": np.minimum}
_MOST_NODES = 12
_SAMPLES = np.linspace(-8.0, 8.0, 161)


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _hard_sigmoid(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


# The functions oneDNN has one op for: its kind, attributes, and whether a group must hold an op
# of these types to be tried (so a plain chain of additions is never taken for one).
_FUNCTIONS = [
    ("GELU", {}, _gelu, {"Erf", "Erfc"}),
    ("HardSwish", {}, lambda x: x * _hard_sigmoid(x), {"Relu6", "Minimum"}),
    ("HardSigmoid", {"alpha": 1.0 / 6.0, "beta": 0.5}, _hard_sigmoid, {"Relu6", "Minimum"}),
]


def _elementwise(node: Node) -> bool:
    return node.op in _NUMPY and node.attrs.get("T") == "float32"


def _elementwise_groups(anchor: Node, ctx: Context):
    """Candidate groups ending at `anchor`, the smallest first: for each tensor x in reach (through
    at most _MOST_NODES elementwise nodes), the nodes between x and the anchor, when every other
    input they read is a scalar constant and nothing outside reads what they compute. Yields
    (x, nodes)."""
    if not _elementwise(anchor):
        return
    cone, queue = {anchor.name: anchor}, [anchor]
    tensors: list[str] = []
    while queue and len(cone) <= _MOST_NODES:
        node = queue.pop(0)
        for r in node.inputs:
            if ctx.graph.constant(r) is not None:
                continue
            tensors.append(normalize(r))
            source = ctx.graph.node(r)
            if _elementwise(source) and source.name not in cone:
                cone[source.name] = source
                queue.append(source)
    for x in dict.fromkeys(tensors):
        group = _between(anchor, x, cone, ctx)
        if group and len(group) > 1 and all(ctx.only_read_by(n.name, {m.name for m in group})
                                            for n in group if n is not anchor):
            yield x, group


def _between(anchor: Node, x: str, cone: dict[str, Node], ctx: Context) -> list[Node] | None:
    """The nodes of the cone on the paths from x to the anchor, or None when one of them reads a
    tensor other than x, a scalar constant or another of them."""
    group: dict[str, Node] = {}
    stack = [anchor]
    while stack:
        node = stack.pop()
        if node.name in group:
            continue
        group[node.name] = node
        for r in node.inputs:
            constant = ctx.graph.constant(r)
            if constant is not None:
                if np.size(constant) != 1:
                    return None
            elif normalize(r) != x:
                source = ctx.graph.node(r)
                if source.name not in cone:
                    return None
                stack.append(source)
    return list(group.values())


def _evaluate(anchor: Node, ctx: Context, x: str, values: np.ndarray) -> np.ndarray:
    results = {x: values}

    def value_of(reference: str) -> np.ndarray:
        reference = normalize(reference)
        if reference not in results:
            constant = ctx.graph.constant(reference)
            if constant is not None:
                return np.asarray(constant, np.float64).reshape(())
            node = ctx.graph.node(reference)
            with np.errstate(all="ignore"):
                results[reference] = _NUMPY[node.op](*[value_of(r) for r in node.inputs])
        return results[reference]

    return value_of(anchor.name)


@pattern
def _elementwise_function(node: Node, ctx: Context) -> tuple[list[OneDnnOp], list[str]] | None:
    """GELU (erf form), hard swish, hard sigmoid, however the TF graph writes them."""
    for x, group in _elementwise_groups(node, ctx):
        ops = {n.op for n in group}
        computed = None
        for kind, attrs, function, needs in _FUNCTIONS:
            if not ops & needs:
                continue
            computed = _evaluate(node, ctx, x, _SAMPLES) if computed is None else computed
            if np.allclose(computed, function(_SAMPLES), rtol=1e-5, atol=1e-6):
                return [ctx.op(kind, node, [x], **attrs)], [n.name for n in group]
    return None


# ------------------------------------------------------------------------------- LayerNorm

def _producer(ctx: Context, reference: str, op: str) -> Node | None:
    node = ctx.graph.node(reference)
    return node if node.op == op else None


def _split(ctx: Context, node: Node | None, op: str, test) -> tuple[Node, str] | None:
    """For a binary node: (the input node of type `op` that passes `test`, the other input)."""
    if node is None or len(node.inputs) != 2:
        return None
    for mine, other in (node.inputs, node.inputs[::-1]):
        candidate = _producer(ctx, mine, op)
        if candidate is not None and test(candidate):
            return candidate, normalize(other)
    return None


@pattern
def _layer_norm(node: Node, ctx: Context) -> tuple[list[OneDnnOp], list[str]] | None:
    """Keras 3's LayerNormalization: x·m + (beta − mean·m) with m = gamma·rsqrt(var + eps), mean and
    var over trailing axes, as one oneDNN LayerNorm (scale and shift optional)."""
    if node.op not in ("AddV2", "Add") or node.attrs.get("T") != "float32":
        return None
    for scaled_ref, shift_ref in (node.inputs, node.inputs[::-1]):
        found = _layer_norm_parts(ctx, ctx.graph.node(scaled_ref), ctx.graph.node(shift_ref), node)
        if found:
            return found
    return None


def _layer_norm_parts(ctx: Context, scaled: Node, shift: Node, anchor: Node):
    if scaled.op != "Mul":
        return None
    graph = ctx.graph
    beta = None
    if shift.op in ("AddV2", "Add"):  # center=True: beta + (-mean)·m
        parts = [(graph.node(a), graph.constant(b)) for a, b in (shift.inputs, shift.inputs[::-1])]
        shift_mul, beta = next(((a, b) for a, b in parts if a.op == "Mul" and b is not None), (None, None))
        group = [shift]
    else:
        shift_mul, group = shift, []
    if shift_mul is None or shift_mul.op != "Mul":
        return None
    neg_and_m = _split(ctx, shift_mul, "Neg", lambda n: True)
    if neg_and_m is None:
        return None
    neg, m_ref = neg_and_m
    mean = graph.node(neg.inputs[0])
    if mean.op != "Mean" or m_ref not in [normalize(r) for r in scaled.inputs]:
        return None
    x = next(normalize(r) for r in scaled.inputs if normalize(r) != m_ref)
    if normalize(mean.inputs[0]) != x:
        return None
    m = graph.node(m_ref)
    gamma = None
    if m.op == "Mul":
        parts = [(graph.node(a), graph.constant(b)) for a, b in (m.inputs, m.inputs[::-1])]
        rsqrt, gamma = next(((a, b) for a, b in parts if a.op == "Rsqrt" and b is not None), (None, None))
        group.append(m)
    else:
        rsqrt = m
    if rsqrt is None or rsqrt.op != "Rsqrt":
        return None
    plus_eps = graph.node(rsqrt.inputs[0])
    split = _split(ctx, plus_eps, "Mean", lambda n: True) if plus_eps.op in ("AddV2", "Add") else None
    if split is None or graph.constant(split[1]) is None or np.size(graph.constant(split[1])) != 1:
        return None
    variance, epsilon = split[0], float(np.asarray(graph.constant(split[1])).reshape(-1)[0])
    squared = graph.node(variance.inputs[0])
    if squared.op != "SquaredDifference" or {normalize(r) for r in squared.inputs} != {x, mean.name}:
        return None
    shape = graph.tensor(x).shape
    axes = [_axes(graph.constant(n.inputs[1]), shape) for n in (mean, variance)]
    if shape is None or axes[0] is None or axes[0] != axes[1] or not all(
            n.attrs.get("keep_dims") for n in (mean, variance)) or graph.tensor(x).dtype != "float32":
        return None
    first = axes[0][0]
    normalized = tuple(shape[first:])
    if None in normalized:
        return None
    group += [anchor, scaled, shift_mul, neg, mean, rsqrt, plus_eps, variance, squared]
    names = {n.name for n in group}
    if any(not ctx.only_read_by(n.name, names) for n in group if n is not anchor):
        return None
    inputs = [x]
    for name, value, default in (("gamma", gamma, 1.0), ("beta", beta, 0.0)):
        value = np.full(normalized, default, np.float32) if value is None else np.asarray(value, np.float32)
        if value.size not in (1, int(np.prod(normalized))):
            return None
        inputs.append(ctx.new_constant(f"{anchor.name}/{name}", np.broadcast_to(value, normalized).copy()
                                       if value.size == 1 else value.reshape(normalized)))
    op = ctx.op("LayerNorm", anchor, inputs, begin_norm_axis=first - len(shape), epsilon=epsilon, keep_stats=False,
                use_affine=True)
    return [op], [n.name for n in group]


def _axes(value, shape) -> list[int] | None:
    """Reduction axes that are the trailing axes of a tensor of this shape, sorted; else None."""
    if value is None or shape is None:
        return None
    rank = len(shape)
    axes = sorted({int(a) % rank for a in np.atleast_1d(value)})
    return axes if axes == list(range(axes[0], rank)) else None
