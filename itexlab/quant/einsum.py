"""Two-operand Einsum as Transpose -> Reshape -> BatchMatMulV2 -> Reshape -> Transpose.

Keras' MultiHeadAttention computes attention with Einsum (`BTNH,BSNH->BNTS` for Q·Kᵀ,
`BNTS,BSNH->BTNH` for weights·V) and EinsumDense layers with Einsum on a constant kernel. Neither
INC nor oneDNN Graph knows Einsum; both know batch matmuls and transposes. Every two-operand
Einsum without repeated or summed-away-alone indices is a batch matmul: the indices in both
operands and the output are its batch, those in both operands only are contracted, those of one
operand and the output are that operand's free dimensions. The same products are summed, so the
FP32 graph computes the same function (up to the order of additions).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..ir.graph import DType, Graph, Node, TensorInfo


def einsum_as_matmul(graph: Graph) -> Graph:
    """Every Einsum that is a batch matmul (see the module's docstring) replaced by one."""
    replaced: dict[str, list[Node]] = {}
    for node in graph.nodes:
        if node.op == "Einsum" and len(node.inputs) == 2:
            nodes = _as_matmul(node, graph)
            if nodes:
                replaced[node.name] = nodes
    if not replaced:
        return graph
    return graph.replace([m for n in graph.nodes for m in replaced.get(n.name, [n])])


def _as_matmul(node: Node, graph: Graph) -> list[Node] | None:
    equation = str(node.attrs.get("equation", "")).replace(" ", "")
    if "->" not in equation or "." in equation:
        return None
    operands, out = equation.split("->")
    if operands.count(",") != 1:
        return None
    a, b = operands.split(",")
    shapes = [graph.tensor(r).shape for r in node.inputs]
    if any(len(set(s)) != len(s) for s in (a, b, out)) or any(s is None for s in shapes) \
            or [len(a), len(b)] != [len(s) for s in shapes] or not set(out) <= set(a) | set(b):
        return None
    size = {i: d for labels, shape in zip((a, b), shapes) for i, d in zip(labels, shape)}
    batch = [i for i in out if i in a and i in b]
    contract = [i for i in a if i in b and i not in out]
    free_a = [i for i in a if i not in b]
    free_b = [i for i in b if i not in a]
    if set(free_a) - set(out) or set(free_b) - set(out) or not contract:
        return None  # an index summed away in one operand alone is no matmul
    unknown = [i for i in batch + free_a + free_b + contract if size[i] is None]
    if len(unknown) > 1 or (unknown and unknown[0] != out[0]):
        return None  # only the leading output dimension (the batch) may be open: it becomes -1
    dtype = node.attrs["T"]
    built: list[Node] = []

    def const(name: str, values) -> str:
        value = np.asarray(values, np.int32)
        built.append(Node(f"{node.name}/{name}", "Const", [], {"dtype": DType("int32"), "value": value},
                          [TensorInfo("int32", value.shape)]))
        return built[-1].name

    def transpose(source: str, labels: str, order: list[str], name: str) -> str:
        if list(labels) == order:
            return source
        built.append(Node(f"{node.name}/{name}", "Transpose",
                          [source, const(f"{name}/perm", [labels.index(i) for i in order])],
                          {"T": DType(dtype), "Tperm": DType("int32")}))
        return built[-1].name

    def reshape(source: str, dims: list[int | None], name: str) -> str:
        built.append(Node(f"{node.name}/{name}", "Reshape", [source, const(f"{name}/shape", [
            -1 if d is None else d for d in dims])], {"T": DType(dtype), "Tshape": DType("int32")}))
        return built[-1].name

    def product(labels: list[str]) -> int | None:
        return None if any(size[i] is None for i in labels) else int(np.prod([size[i] for i in labels], dtype=np.int64))

    batch_dims = [size[i] for i in batch]
    left = transpose(node.inputs[0], a, batch + free_a + contract, "transpose_a")
    right = transpose(node.inputs[1], b, batch + contract + free_b, "transpose_b")
    if len(free_a) != 1 or len(contract) != 1:
        left = reshape(left, batch_dims + [product(free_a), product(contract)], "reshape_a")
    if len(free_b) != 1 or len(contract) != 1:
        right = reshape(right, batch_dims + [product(contract), product(free_b)], "reshape_b")
    result = f"{node.name}/matmul"
    built.append(Node(result, "BatchMatMulV2", [left, right], {"T": DType(dtype), "adj_x": False, "adj_y": False}))
    labels = batch + free_a + free_b
    if len(free_a) != 1 or len(free_b) != 1:
        result = reshape(result, [size[i] for i in labels], "reshape_out")
    if labels != list(out):
        result = transpose(result, "".join(labels), list(out), "transpose_out")
    built[-1] = dataclasses.replace(built[-1], name=node.name)  # the last step: readers keep reading its name
    return built
