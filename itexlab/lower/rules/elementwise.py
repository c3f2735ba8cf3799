"""Rules for elementwise ops: activations and binary arithmetic (oneDNN fuses chains of them into
the convolution or matmul before them as post-ops)."""

from __future__ import annotations

import numpy as np

from ...ir.graph import Node
from ...ir.plan import OneDnnOp
from .base import Context, Untranslatable, rule


@rule("Relu")
def _relu(node: Node, ctx: Context) -> list[OneDnnOp]:
    return [ctx.op("ReLU", node, node.inputs[:1])]


@rule("Relu6")
def _relu6(node: Node, ctx: Context) -> list[OneDnnOp]:
    return [ctx.op("Clamp", node, node.inputs[:1], min=0.0, max=6.0)]


# TF elementwise op -> oneDNN op and its fixed attributes
_UNARY = {"Sigmoid": ("Sigmoid", {}), "Tanh": ("Tanh", {}), "Elu": ("Elu", {"alpha": 1.0}), "Exp": ("Exp", {}),
          "Sqrt": ("Sqrt", {}), "Square": ("Square", {}), "Abs": ("Abs", {})}
_BINARY = {"Add": "Add", "AddV2": "Add", "Mul": "Multiply", "Sub": "Subtract", "RealDiv": "Divide",
           "Maximum": "Maximum", "Minimum": "Minimum", "SquaredDifference": "SquaredDifference"}


def _floats(node: Node) -> None:
    if node.attrs.get("T") != "float32":
        raise Untranslatable(f"{node.op} on {node.attrs.get('T')} (only float32 is translated)")


@rule(*_UNARY)
def _unary(node: Node, ctx: Context) -> list[OneDnnOp]:
    _floats(node)
    kind, attrs = _UNARY[node.op]
    return [ctx.op(kind, node, node.inputs[:1], **attrs)]


@rule("LeakyRelu")
def _leaky_relu(node: Node, ctx: Context) -> list[OneDnnOp]:
    _floats(node)
    return [ctx.op("LeakyReLU", node, node.inputs[:1], alpha=float(node.attrs.get("alpha", 0.2)))]


@rule(*_BINARY)
def _binary(node: Node, ctx: Context) -> list[OneDnnOp]:
    _floats(node)
    return [ctx.op(_BINARY[node.op], node, node.inputs, auto_broadcast="numpy")]


@rule("Neg")
def _neg(node: Node, ctx: Context) -> list[OneDnnOp]:
    _floats(node)
    minus_one = ctx.new_constant(f"{node.name}/minus_one", np.array([-1.0], np.float32))
    return [ctx.op("Multiply", node, [node.inputs[0], minus_one], auto_broadcast="numpy")]


@rule("Pow")
def _pow(node: Node, ctx: Context) -> list[OneDnnOp]:
    """x ** 2, x ** 3 and x ** 0.5 as Square, x * Square(x) and Sqrt: oneDNN 3.2 fuses those, and
    runs no Pow alone."""
    _floats(node)
    exponent = np.asarray(ctx.const(node.inputs[1], "exponent"), np.float64)
    if exponent.size != 1 or float(exponent.reshape(-1)[0]) not in (2.0, 3.0, 0.5):
        raise Untranslatable("an exponent other than 2, 3 or 0.5 (oneDNN 3.2 runs no Pow on its own)")
    value = float(exponent.reshape(-1)[0])
    if value != 3.0:
        return [ctx.op("Square" if value == 2.0 else "Sqrt", node, node.inputs[:1])]
    square = f"{node.name}/square"
    ctx.extra_tensors[square] = ctx.graph.tensor(node.name)
    return [ctx.op("Square", node, node.inputs[:1], [square]), ctx.op("Multiply", node, [node.inputs[0], square],
                                                                       auto_broadcast="numpy")]
