"""Rewrites of the QDQ graph that give oneDNN the patterns it fuses, without changing results.

A global mean over H and W becomes an AvgPool with a whole-image window and a reshape: oneDNN 3.2
runs ReduceMean with a reference kernel (3 ms of Inception V3's 19), pooling with a JIT one.

Shared Dequantize outputs are split, one Dequantize per consumer (elementwise consumers share one):
oneDNN 3.2 fuses Dequantize -> op pairs, and crashes compiling a partition where one Dequantize
feeds both a convolution and its residual Add (found by tests/test_partition_execute.py::test_residual_add).

INC leaves ConcatV2 (and a MaxPool feeding one) in FP32 and quantizes only the concat's output.
Concat and MaxPool commute with quantization, so quantizing each input with the scale of the
output's QuantizeV2 gives the very same int8 values. After this pass, oneDNN sees
Dequantize* -> Concat -> Quantize and Dequantize -> MaxPool -> Quantize: INT8 tensors never
round-trip through FP32 on TF. ITEX does not do this (it leaves ConcatV2 out altogether).
A MaxPool that already reads a Dequantize (scale A) keeps scale A on its output instead: its
output values are input values, so quantizing them with A is exact, and the requantization to
the consumer's scale B moves behind the pool, onto 4x fewer values, where oneDNN fuses it into one
int8 reorder (see translate's QuantizeV2 rule). oneDNN 3.2 runs an int8 MaxPool whose input and
output scales differ with a reference kernel (13 ms for one of Inception V3's, against 0.05 ms).

A zero Pad in front of a MaxPool whose input is unsigned int8 (ResNet's stem: Relu -> Pad ->
QuantizeV2 -> Dequantize -> MaxPool) becomes the pool's own padding: over values >= 0, a window's
max is the same with or without zeros added. oneDNN Graph 3.2 has no Pad op, so otherwise TF pads
the FP32 tensor between two partitions (16 of ResNet50's 104 ms at batch 16).

Keras' Dense on a sequence is TF's tensordot: Reshape(x, [-1, K]) -> MatMul -> Reshape back to
(batch, seq, N), and its bias, activation and quantizer come after the second reshape, where oneDNN
cannot fuse them into the matmul (BERT-base: 72 binary, 12 GELU and 24 reorder primitives, about
a fifth of its time at batch 16). A matmul of the unreshaped x with the same 2-D weights (a batch
matmul, weights broadcast) computes the same sums without either reshape.

Keras' EinsumDense (attention's query, key and value projections) adds its bias after reshaping
the matmul's output into heads, (batch, seq, heads * depth) -> (batch, seq, heads, depth): added
before the reshape, the same bias (flattened) fuses into the matmul.

On CPUs without VNNI, oneDNN's int8 convolutions and matmuls add u8 x s8 products two at a time in
a saturating int16; `seven_bit_weights` rounds their weights to even int8 codes so that no pair can
clip (see its docstring).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..ir.graph import DType, Graph, Node, TensorInfo, normalize, split_ref
from .qparams import broadcast_params, non_vnni_weights, quant_params

_COMMUTING_OPS = ("ConcatV2", "MaxPool")


def _only_reader(node: Node, consumers, outputs: set[str]) -> Node | None:
    """The one node reading this node's output (however often), or None where several do, none
    does, or it is a graph output (`outputs`: node names): a rewrite may then move or merge it."""
    readers = {u.name: u for u in consumers.get(node.name, [])}
    return next(iter(readers.values())) if len(readers) == 1 and node.name not in outputs else None


def _output_nodes(graph: Graph) -> set[str]:
    return {split_ref(r)[0] for r in graph.outputs}


def _quantizer_of(node: Node, graph: Graph, consumers) -> Node | None:
    """The QuantizeV2 with constant min/max that reads this node's output, if any."""
    for user in consumers.get(node.name, []):
        if (user.op == "QuantizeV2" and normalize(user.inputs[0]) == node.name
                and all(graph.is_constant(r) for r in user.inputs[1:3])):
            return user
    return None


def _pair(source: str, quantizer: Node, name: str, graph: Graph) -> list[Node]:
    """QuantizeV2 -> Dequantize of `source` with the parameters of `quantizer`."""
    shape = graph.tensor(source).shape
    dtype = quantizer.attrs["T"]
    q = Node(f"{name}/quantize", "QuantizeV2", [source, *quantizer.inputs[1:3]], dict(quantizer.attrs),
             [TensorInfo(dtype, shape), TensorInfo("float32", ()), TensorInfo("float32", ())])
    dq = Node(f"{name}/dequantize", "Dequantize", [q.name, f"{q.name}:1", f"{q.name}:2"],
              {"T": DType(dtype), "mode": quantizer.attrs.get("mode", "SCALED"), "dtype": DType("float32"),
               "axis": -1, "narrow_range": False},
              [TensorInfo("float32", shape)])
    return [q, dq]


def quantize_commuting_ops(graph: Graph) -> Graph:
    """Move the output quantization of ConcatV2/MaxPool onto their inputs (exactly equivalent)."""
    added: list[Node] = []
    replaced: dict[str, Node] = {}
    # Walk from the outputs back, so a MaxPool feeding a concat sees the concat's new quantizer.
    for node in reversed(graph.nodes):
        if node.op not in _COMMUTING_OPS or node.attrs.get("T") != "float32":
            continue
        consumers = _consumers(graph, replaced, added)
        quantizer = _quantizer_of(node, graph, consumers)
        if quantizer is None:
            continue
        data_inputs = node.inputs[:-1] if node.op == "ConcatV2" else node.inputs[:1]
        if any(graph.is_constant(r) for r in data_inputs):
            continue
        if node.op == "MaxPool":
            source = _current(graph, replaced, added, data_inputs[0])
            input_quantizer = _current(graph, replaced, added, source.inputs[0]) if source.op == "Dequantize" else None
            if input_quantizer is not None and input_quantizer.op == "QuantizeV2":
                if not _same_quantization(graph, input_quantizer, quantizer):
                    pair = _pair(node.name, input_quantizer, f"{node.name}/output", graph)
                    added += pair
                    _redirect(consumers.get(node.name, []), node.name, pair[1].name, replaced)
                continue
        new_inputs = list(node.inputs)
        for i, source in enumerate(data_inputs):
            pair = _pair(source, quantizer, f"{node.name}/input_{i}", graph)
            added += pair
            new_inputs[i] = pair[1].name
        replaced[node.name] = dataclasses.replace(node, inputs=new_inputs)
        # Other readers of the FP32 output read the (lossless) dequantized int8 value instead,
        # so the QuantizeV2 is the op's only consumer and oneDNN can fuse it.
        others = [c for c in consumers.get(node.name, []) if c.name != quantizer.name]
        if others:
            dq = _pair(node.name, quantizer, f"{node.name}/requantized", graph)[1]
            dq = dataclasses.replace(dq, inputs=[quantizer.name, f"{quantizer.name}:1", f"{quantizer.name}:2"])
            added.append(dq)
            _redirect(others, node.name, dq.name, replaced)
    if not replaced:
        return graph
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes + added])


def _redirect(users: list[Node], old: str, new: str, replaced: dict[str, Node]) -> None:
    """Each user reads `new` where it read `old` (on top of the rewrites already made)."""
    for user in users:
        current = replaced.get(user.name, user)
        replaced[user.name] = dataclasses.replace(
            current, inputs=[new if normalize(r) == old else r for r in current.inputs])


def _same_quantization(graph: Graph, a: Node, b: Node) -> bool:
    return (a.attrs.get("T") == b.attrs.get("T") and a.attrs.get("mode") == b.attrs.get("mode")
            and all(graph.constant(x) is not None and np.array_equal(graph.constant(x), graph.constant(y))
                    for x, y in zip(a.inputs[1:3], b.inputs[1:3])))


def _current(graph: Graph, replaced: dict[str, Node], added: list[Node], reference: str) -> Node:
    name = normalize(reference)
    return replaced.get(name) or next((n for n in added if n.name == name), None) or graph.node(name)


def _consumers(graph: Graph, replaced: dict[str, Node], added: list[Node]):
    current = Graph([replaced.get(n.name, n) for n in graph.nodes + added], graph.inputs, graph.outputs)
    return current.consumers()


# Consumers that may share one Dequantize: elementwise ops and reductions (a LayerNorm's or a GELU's
# ops read their input several times, and become one oneDNN op that reads it once).
_SHARING = {"Add", "AddV2", "Sub", "Mul", "RealDiv", "Maximum", "Minimum", "SquaredDifference", "Neg", "Sigmoid",
            "Tanh", "Relu", "Relu6", "Elu", "LeakyRelu", "Exp", "Sqrt", "Square", "Abs", "Pow", "Erf", "Erfc",
            "Rsqrt", "Mean"}


def tensordot_as_batch_matmul(graph: Graph) -> Graph:
    """Reshape(x[..., K], [-1, K]) -> [per-tensor QuantizeV2 -> Dequantize ->] MatMul(w[K, N]) ->
    Reshape([..., N]) becomes [QuantizeV2 -> Dequantize ->] BatchMatMulV2(x, w): the same products
    and sums (a per-tensor quantizer commutes with a reshape), named as the MatMul was."""
    consumers, outputs = graph.consumers(), _output_nodes(graph)
    only_reader = lambda node: _only_reader(node, consumers, outputs)  # noqa: E731
    replaced: dict[str, Node] = {}
    for matmul in graph.nodes:
        if matmul.op != "MatMul" or matmul.attrs.get("transpose_a") or matmul.attrs.get("T") != "float32":
            continue
        after = only_reader(matmul)
        data = graph.producer(matmul.inputs[0])
        quantizer = graph.producer(data.inputs[0]) if data.op == "Dequantize" else None
        flatten = graph.producer(quantizer.inputs[0]) if quantizer is not None else data
        if (after is None or after.op != "Reshape" or flatten.op != "Reshape" or after.name in outputs
                or only_reader(flatten) is not (quantizer or matmul)):
            continue
        if quantizer is not None and (quantizer.op != "QuantizeV2" or only_reader(quantizer) is not data
                                      or only_reader(data) is not matmul
                                      or any(np.size(graph.constant(r)) != 1 for r in quantizer.inputs[1:3])):
            continue
        x = graph.tensor(flatten.inputs[0]).shape
        flat, out = graph.tensor(flatten.name).shape, graph.tensor(after.name).shape
        if (x is None or flat is None or out is None or len(x) < 3 or len(flat) != 2 or None in x[1:]
                or flat[-1] != x[-1] or out[:-1] != x[:-1] or out[-1] != matmul.outputs[0].shape[-1]):
            continue
        source = replaced.get(flatten.name, flatten).inputs[0]  # a tensordot before may have become its reader
        unflattened = lambda node: dataclasses.replace(  # noqa: E731
            node, outputs=[dataclasses.replace(node.outputs[0], shape=x), *node.outputs[1:]])
        if quantizer is not None:
            replaced[quantizer.name] = unflattened(dataclasses.replace(quantizer, inputs=[source,
                                                                                          *quantizer.inputs[1:]]))
            replaced[data.name] = unflattened(data)
        replaced[matmul.name] = Node(
            matmul.name, "BatchMatMulV2", [data.name if quantizer is not None else source, matmul.inputs[1]],
            {"T": DType("float32"), "adj_x": False, "adj_y": bool(matmul.attrs.get("transpose_b", False))},
            [TensorInfo("float32", out)])
        _redirect(consumers.get(after.name, []), after.name, matmul.name, replaced)
    if not replaced:
        return graph
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes])


def bias_before_reshape(graph: Graph) -> Graph:
    """Reshape(y[..., M], [..., *T]) -> Add(c) becomes Add(y, c') -> Reshape, where the reshape only
    splits the last axis into T (prod(T) = M) and the constant c varies along T alone: c' is c
    broadcast to T and flattened, the same number added to the same element."""
    consumers, outputs = graph.consumers(), _output_nodes(graph)
    replaced: dict[str, Node] = {}
    added: list[Node] = []
    for add in graph.nodes:
        if add.op not in ("Add", "AddV2", "BiasAdd") or add.attrs.get("T") != "float32" or add.name in outputs:
            continue
        constants = [graph.constant(r) for r in add.inputs[:2]]
        if sum(c is not None for c in constants) != 1:
            continue
        bias = next(c for c in constants if c is not None)
        reshape = graph.producer(next(r for r, c in zip(add.inputs, constants) if c is None))
        if reshape.op != "Reshape" or _only_reader(reshape, consumers, outputs) is not add:
            continue
        y, split = graph.tensor(reshape.inputs[0]).shape, graph.tensor(reshape.name).shape
        if y is None or split is None or None in y[1:] or None in split[1:] or len(split) <= len(y) - 1:
            continue
        kept, tail = len(y) - 1, split[len(y) - 1:]
        bias = np.asarray(bias, np.float32)
        if (split[:kept] != y[:kept] or int(np.prod(tail)) != y[-1] or bias.ndim > len(split)
                or any(d != 1 for d in bias.shape[:max(0, bias.ndim - len(tail))])):
            continue
        try:
            flat = np.broadcast_to(bias.reshape(bias.shape[-len(tail):] if bias.ndim else ()), tail).reshape(-1)
        except ValueError:
            continue
        constant = Node(f"{add.name}/itexlab_flat_bias", "Const", [], {"dtype": DType("float32"), "value": flat.copy()},
                        [TensorInfo("float32", flat.shape)])
        replaced[add.name] = Node(add.name, "AddV2", [reshape.inputs[0], constant.name], {"T": DType("float32")},
                                  [TensorInfo("float32", y)])
        moved = dataclasses.replace(reshape, name=f"{add.name}/itexlab_reshape", inputs=[add.name, reshape.inputs[1]])
        added += [constant, moved]
        _redirect(consumers.get(add.name, []), add.name, moved.name, replaced)
    if not replaced:
        return graph
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes] + added)


def split_shared_dequantize(graph: Graph) -> Graph:
    """Give each consumer of a Dequantize its own copy (the same computation, repeated), but for
    elementwise consumers, which share the first one: two convolutions each need a Dequantize of
    their own to fuse into an int8 partition, while a LayerNorm's ops must read one tensor."""
    consumers = graph.consumers()
    replaced: dict[str, Node] = {}
    added: list[Node] = []
    for node in graph.nodes:
        users = consumers.get(node.name, [])
        if node.op != "Dequantize" or len(users) < 2:
            continue
        sharing = [u for u in users if u.op in _SHARING]
        users = (sharing[:1] if sharing else []) + [u for u in users if u.op not in _SHARING]
        for k, user in enumerate(users[1:], 1):
            copy = dataclasses.replace(node, name=f"{node.name}/copy_{k}")
            added.append(copy)
            current = replaced.get(user.name, user)
            inputs = list(current.inputs)
            inputs[next(i for i, r in enumerate(inputs) if normalize(r) == node.name)] = copy.name
            replaced[user.name] = dataclasses.replace(current, inputs=inputs)
    if not added:
        return graph
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes] + added)


def pad_into_max_pool(graph: Graph) -> Graph:
    """Pad(x, zeros on H and W) -> QuantizeV2(quint8) -> Dequantize -> MaxPool(VALID) becomes
    QuantizeV2(x) -> Dequantize -> MaxPool(EXPLICIT padding): the same numbers, since every window
    keeps at least one real value (each pad is narrower than the window) and all values are >= 0."""
    consumers, outputs = graph.consumers(), _output_nodes(graph)
    replaced: dict[str, Node] = {}
    for pool in graph.nodes:
        if pool.op != "MaxPool" or pool.attrs.get("padding") != "VALID" or pool.attrs.get("data_format", "NHWC") != "NHWC":
            continue
        dequantize = graph.node(pool.inputs[0])
        quantize = graph.node(dequantize.inputs[0]) if dequantize.op == "Dequantize" else None
        if (quantize is None or quantize.op != "QuantizeV2" or quantize.attrs.get("T") != "quint8"
                or quantize.attrs.get("mode") != "SCALED" or _only_reader(dequantize, consumers, outputs) is not pool
                or _only_reader(quantize, consumers, outputs) is not dequantize):
            continue
        pad = graph.node(quantize.inputs[0])
        if pad.op not in ("Pad", "PadV2"):
            continue
        pads = graph.constant(pad.inputs[1])
        fill = graph.constant(pad.inputs[2]) if pad.op == "PadV2" else 0
        kernel = pool.attrs["ksize"]
        if (pads is None or fill is None or np.any(np.asarray(fill) != 0) or np.shape(pads) != (4, 2)
                or np.any(pads[[0, 3]] != 0) or np.any(pads < 0) or np.any(pads[1] >= kernel[1])
                or np.any(pads[2] >= kernel[2])):
            continue
        unpadded = graph.tensor(pad.inputs[0]).shape
        replaced[quantize.name] = dataclasses.replace(
            quantize, inputs=[pad.inputs[0], *quantize.inputs[1:]],
            outputs=[dataclasses.replace(quantize.outputs[0], shape=unpadded), *quantize.outputs[1:]])
        replaced[dequantize.name] = dataclasses.replace(
            dequantize, outputs=[dataclasses.replace(dequantize.outputs[0], shape=unpadded)])
        replaced[pool.name] = dataclasses.replace(pool, attrs={**pool.attrs, "padding": "EXPLICIT",
                                                               "explicit_paddings": [int(p) for p in pads.reshape(-1)]})
    if not replaced:
        return graph
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes])


def global_mean_as_pooling(graph: Graph) -> Graph:
    """Mean(x[N,H,W,C], axes=[1,2]) -> Reshape(AvgPool(x, window HxW), [-1, C]): the same numbers;
    with keep_dims (a squeeze-and-excite block's), the AvgPool alone."""
    replaced: dict[str, Node] = {}
    added: list[Node] = []
    for node in graph.nodes:
        if node.op != "Mean" or node.attrs.get("T") != "float32":
            continue
        axes = graph.constant(node.inputs[1])
        shape = graph.tensor(node.inputs[0]).shape
        if axes is None or shape is None or len(shape) != 4 or None in shape[1:]:
            continue
        if sorted(int(a) % 4 for a in np.atleast_1d(axes)) != [1, 2]:
            continue
        n, h, w, c = shape
        pool_attrs = {"T": DType("float32"), "ksize": [1, h, w, 1], "strides": [1, 1, 1, 1], "padding": "VALID",
                      "data_format": "NHWC"}
        if node.attrs.get("keep_dims", False):
            replaced[node.name] = Node(node.name, "AvgPool", [node.inputs[0]], pool_attrs, node.outputs)
            continue
        pool = Node(f"{node.name}/global_pool", "AvgPool", [node.inputs[0]], pool_attrs,
                    [TensorInfo("float32", (n, 1, 1, c))])
        target = Node(f"{node.name}/flat_shape", "Const", [], {"dtype": DType("int32"),
                                                               "value": np.array([-1, c], np.int32)},
                      [TensorInfo("int32", (2,))])
        replaced[node.name] = Node(node.name, "Reshape", [pool.name, target.name],
                                   {"T": DType("float32"), "Tshape": DType("int32")}, node.outputs)
        added += [pool, target]
    if not replaced:
        return graph
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes] + added)


def without_quantization(graph: Graph, only: set[str] | None = None) -> Graph:
    """The FP32 graph a QDQ graph emulates: every Dequantize(QuantizeV2(x)) read as x. Its tensors
    keep the QDQ graph's names, so each can be set beside its INT8 counterpart. With `only` (node
    names), just those nodes read FP32: they are kept in FP32, with the calibration as it was."""
    replaced: dict[str, Node] = {}
    consumers = graph.consumers()
    for node in graph.nodes:
        source = graph.node(node.inputs[0]) if node.op == "Dequantize" else None
        if source is not None and source.op == "QuantizeV2":
            users = [u for u in consumers.get(node.name, []) if only is None or u.name in only]
            _redirect(users, node.name, source.inputs[0], replaced)
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes])


def seven_bit_weights(graph: Graph) -> tuple[Graph, list[str]]:
    """Round to even codes the int8 weights that oneDNN's kernels without VNNI would sum in int16
    pairs or halve (qparams.NON_VNNI_WEIGHTS): 7-bit weights on the 8-bit grid of the same range.
    Where a matmul's second operand is an activation (attention: both operands are; oneDNN 3.2's
    matmul without VNNI sums their int8 pairs in int16 as well, s8 data shifted by 128 included),
    its quantizer's range is doubled instead: codes of at most 64, 255 * 64 * 2 = 32640 fits.
    Returns the new graph and the ops whose weights changed.

    Without VNNI, oneDNN multiplies u8 data by s8 weights with vpmaddubsw, which adds two products
    into a saturating int16: 255 * 127 * 2 = 64770 clips at 32767, silently. Even codes halve to at
    most 63 (255 * 63 * 2 = 32130 fits), and where oneDNN halves the weights itself (s8 data) they
    halve without rounding. The weights stay QuantizeV2 -> Dequantize with their ranges, so stock
    TF runs exactly the values oneDNN sees: the oracle is still the graph itexlab runs. The cost is
    one bit of weight precision (ONNX Runtime's reduce_range, NNCF's overflow_fix).
    """
    replaced: dict[str, Node] = {}
    touched = []
    for node in graph.nodes:
        if non_vnni_weights(graph, node) is None:
            continue
        dequantize = graph.producer(node.inputs[1])
        quantizer = graph.producer(dequantize.inputs[0]) if dequantize.op == "Dequantize" else None
        if (quantizer is None or quantizer.op != "QuantizeV2" or quantizer.attrs.get("T") != "qint8"
                or quantizer.attrs.get("mode") != "SCALED"):
            continue
        value, lo, hi = (graph.constant(r) for r in quantizer.inputs[:3])
        if lo is None or hi is None:
            continue
        if value is None:  # an activation as the second operand (attention's K or V): a range twice as
            for end, limit in zip(quantizer.inputs[1:3], (lo, hi)):  # wide, so no code exceeds 64
                replaced[normalize(end)] = Node(normalize(end), "Const", [], {"dtype": DType("float32"),
                                                "value": (2 * np.asarray(limit, np.float32)).astype(np.float32)},
                                                graph.producer(end).outputs)
            touched.append(node.name)
            continue
        scales, zps = quant_params(quantizer, lo, hi)
        step, _ = broadcast_params(quantizer, value, scales, zps)
        even = 2 * np.clip(np.rint(value / (2 * step)), -63, 63) * step
        weights = graph.producer(quantizer.inputs[0])
        replaced[weights.name] = dataclasses.replace(weights, attrs={**weights.attrs,
                                                                      "value": even.astype(value.dtype)})
        touched.append(node.name)
    if not replaced:
        return graph, []
    return graph.replace([replaced.get(n.name, n) for n in graph.nodes]), touched
