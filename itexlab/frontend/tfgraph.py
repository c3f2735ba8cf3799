"""The TensorFlow boundary: model intake, GraphDef <-> neutral Graph, and running graphs on TF kernels.

No other module imports TensorFlow for graph work; everything else speaks `itexlab.ir.graph`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import tempfile
import warnings
from typing import Any, Sequence

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_IMPORTED_BEFORE_ITEXLAB = "tensorflow" in sys.modules  # TF_ENABLE_ONEDNN_OPTS: see itexlab/__init__.py
import tensorflow as tf  # noqa: E402
from tensorflow.core.framework import attr_value_pb2, graph_pb2, tensor_shape_pb2  # noqa: E402

from ..errors import ModelError, first_line  # noqa: E402
from ..ir import structure  # noqa: E402
from ..ir.graph import (QUANTIZED_DTYPES, DType, Graph, Node, ShapeAttr, TensorInfo, normalize,  # noqa: E402
                        prune_and_sort, ref, split_ref)

GraphDef = graph_pb2.GraphDef


# ----------------------------------------------------------------------------------------- intake

def load(model: Any, input_shape: Sequence[int | None] | None = None) -> Graph:
    """Freeze any supported model form into a neutral Graph with named inputs and outputs.

    Accepts a Keras 3 model object, a `.keras` file, a SavedModel directory, a `GraphDef`, or a
    frozen `.pb` file. Nothing the user gave is modified.
    """
    import keras

    if isinstance(model, Graph):
        return model
    if isinstance(model, GraphDef):
        return graph_from_graph_def(model)
    if isinstance(model, keras.Model):
        return _freeze_keras(model)
    if isinstance(model, (str, os.PathLike)):
        path = pathlib.Path(model)
        if not path.exists():
            raise ModelError(f"model path '{path}' does not exist")
        if path.is_dir():
            return _freeze_saved_model(path)
        if path.suffix == ".keras":
            return _freeze_keras(_load_keras_file(path))
        if path.suffix == ".pb":
            return graph_from_graph_def(graph_def_from_bytes(path.read_bytes(), path))
        raise ModelError(f"'{path}': expected a .keras file, a .pb file or a SavedModel directory")
    raise ModelError(f"cannot read a model from {type(model).__name__}")


def graph_def_from_bytes(data: bytes, where: str | os.PathLike) -> GraphDef:
    """A serialized GraphDef, or ModelError naming the file it came from."""
    graph_def = GraphDef()
    try:
        graph_def.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError, a bare Exception subclass
        raise ModelError(f"'{where}' is not a frozen GraphDef: {e}") from e
    return graph_def


def _load_keras_file(path: pathlib.Path):
    """A .keras file as a Keras model, or ModelError saying why not (Keras' own errors name a
    missing file for a damaged one, and raise a bare TypeError for an unregistered layer)."""
    import zipfile

    import keras

    if not zipfile.is_zipfile(path):
        raise ModelError(f"'{path}' is not a readable .keras file: a .keras file is a zip archive, and this one is "
                         "damaged or truncated")
    try:
        return keras.models.load_model(path, compile=False)  # safe_mode stays on: no arbitrary code runs
    except TypeError as e:
        raise ModelError(f"'{path}' uses a layer or object Keras cannot rebuild ({first_line(e)}): register it with "
                         "keras.saving.register_keras_serializable, or load the model yourself and pass the model "
                         "object") from e
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as e:
        raise ModelError(f"'{path}' is not a readable .keras file: {first_line(e)}") from e


def from_concrete_function(fn) -> Graph:
    """Freeze a tf.function's concrete function (variables become constants)."""
    return _freeze_concrete(fn)


def _freeze_concrete(fn, input_nest=None) -> Graph:
    """The frozen graph of a concrete function, with the structures of its inputs (`input_nest`, or
    its own signature's) and outputs over the graph's flat input and output lists."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(fn)
    graph_def = frozen.graph.as_graph_def()
    inputs = [t.name.removesuffix(":0") for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [_tensor_ref(t.name) for t in frozen.outputs]
    graph = graph_from_graph_def(graph_def, inputs, outputs)
    if input_nest is None:
        args, kwargs = fn.structured_input_signature
        input_nest = kwargs if not args else args[0] if len(args) == 1 and not kwargs else list(args)
    graph.input_structure = _nested_names(input_nest, inputs)
    graph.output_structure = _nested_names(fn.structured_outputs, outputs)
    return graph


def _nested_names(nest, names: list[str]):
    """The structure of a nest (of tensors or specs) whose leaves, in tf.nest's order, are `names`;
    None where they are not (then the flat list is the structure)."""
    if len(tf.nest.flatten(nest)) != len(names):
        return None
    order = iter(names)
    return structure.from_nest(nest, lambda _: next(order))


def _freeze_keras(model) -> Graph:
    """A Keras model traced as it is called, with its inputs nested as the model takes them; one
    input is named "input", several by their Keras names."""
    nest = _keras_inputs(model)
    flat = tf.nest.flatten(nest)
    names = ["input"] if len(flat) == 1 else _unique([_op_name(getattr(t, "name", "") or f"input_{i}")
                                                      for i, t in enumerate(flat)])
    specs = [tf.TensorSpec(t.shape, t.dtype, name=name) for t, name in zip(flat, names)]
    fn = tf.function(lambda *xs: model(tf.nest.pack_sequence_as(nest, list(xs)), training=False))
    return _freeze_concrete(fn.get_concrete_function(*specs), tf.nest.pack_sequence_as(nest, specs))


def _keras_inputs(model):
    """A Keras model's inputs, nested as it takes them: a functional model's own structure, a
    Sequential model's one input (or list)."""
    try:
        return model.input
    except (AttributeError, ValueError):  # a Sequential model has no inbound node of its own
        pass
    try:
        inputs = model.inputs
    except AttributeError:
        raise ModelError(f"the Keras model {type(model).__name__} {model.name!r} has no defined inputs yet: build it "
                         "(call it once, or give it a keras.Input) before quantizing") from None
    return inputs[0] if len(inputs) == 1 else list(inputs)


def _op_name(name: str) -> str:
    """A name TF takes for a placeholder: letters, digits and _./- only, starting with a letter."""
    cleaned = "".join(c if c.isalnum() or c in "_.-/" else "_" for c in name.split(":")[0])
    return cleaned if cleaned[:1].isalpha() else f"input_{cleaned}"


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}_{seen[name] - 1}")
    return result


def _freeze_saved_model(path: pathlib.Path) -> Graph:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:
        raise ModelError(f"'{path}' is not a readable SavedModel: {e}") from e
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ModelError(f"SavedModel '{path}' has no serving_default signature")
    return _freeze_concrete(signatures["serving_default"])


def _tensor_ref(tf_name: str) -> str:
    name, _, index = tf_name.partition(":")
    return name if index in ("", "0") else f"{name}:{index}"


# ------------------------------------------------------------------------- GraphDef <-> Graph

def graph_from_graph_def(graph_def: GraphDef, inputs: Sequence[str] | None = None,
                         outputs: Sequence[str] | None = None, input_structure=None, output_structure=None) -> Graph:
    """Decode a GraphDef and annotate every node's outputs with dtype and static shape.

    Without explicit inputs/outputs, Placeholders are the inputs and nodes nobody reads the outputs.
    """
    infos = _output_infos(graph_def)  # first: TF checks every op, attribute, dtype and input
    nodes = [_decode_node(n) for n in graph_def.node]
    if inputs is None:
        inputs = [n.name for n in nodes if n.op == "Placeholder"]
    if outputs is None:
        read = {split_ref(r)[0] for n in nodes for r in n.inputs}
        outputs = [n.name for n in nodes if n.name not in read and n.op not in ("Placeholder", "NoOp")
                   and not n.op.endswith("Const")]
    if not inputs:
        raise ModelError("the model has no inputs (no Placeholder)")
    if not outputs:
        raise ModelError("the model has no outputs")
    for node in nodes:
        node.outputs = infos[node.name]
    return Graph(prune_and_sort(nodes, list(outputs)), list(inputs), list(outputs), input_structure, output_structure)


def _output_infos(graph_def: GraphDef) -> dict[str, list[TensorInfo]]:
    _check_constants(graph_def)
    g = tf.Graph()
    with g.as_default():
        try:
            tf.graph_util.import_graph_def(graph_def, name="")
        except (ValueError, TypeError, KeyError, tf.errors.OpError) as e:  # unknown ops, bad attrs, cycles...
            raise ModelError(f"the GraphDef is malformed: {first_line(e)}") from e
    infos = {}
    for op in g.get_operations():
        infos[op.name] = [
            TensorInfo(t.dtype.name, None if t.shape.rank is None else tuple(t.shape.as_list()))
            for t in op.outputs
        ]
    return infos


def _check_constants(graph_def: GraphDef) -> None:
    """ModelError for a constant whose value is not of its declared type: TF 2.21's importer trusts
    them, and its shape inference ends the process when such a value is read (a ConcatV2 axis given
    as a double: `Check failed: dtype() == expected_dtype`)."""
    for node in graph_def.node:
        if node.op in ("Const", "HostConst") and node.attr["value"].tensor.dtype != node.attr["dtype"].type:
            raise ModelError(f"the GraphDef is malformed: the value of constant {node.name!r} is not of its "
                             "declared type")


def _decode_node(node_def) -> Node:
    inputs = [i for i in node_def.input if not i.startswith("^")]
    attrs = {k: _decode_attr(v) for k, v in node_def.attr.items() if not k.startswith("_")}
    return Node(node_def.name, node_def.op, inputs, attrs)


def _decode_attr(value: attr_value_pb2.AttrValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode()
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "type":
        return DType(tf.dtypes.as_dtype(value.type).name)
    if kind == "shape":
        return _decode_shape(value.shape)
    if kind == "tensor":
        return tf.make_ndarray(value.tensor)
    if kind == "list":
        lst = value.list
        if lst.type:
            return [DType(tf.dtypes.as_dtype(t).name) for t in lst.type]
        if lst.shape:
            return [_decode_shape(s) for s in lst.shape]
        for field in ("s", "i", "f", "b"):
            items = list(getattr(lst, field))
            if items:
                return [x.decode() for x in items] if field == "s" else items
        return []
    raise ModelError(f"attribute kind '{kind}' is not supported")


def _decode_shape(shape: tensor_shape_pb2.TensorShapeProto) -> ShapeAttr:
    result = ShapeAttr(None if d.size < 0 else d.size for d in shape.dim)
    result.unknown_rank = shape.unknown_rank
    return result


# Constants above this many elements carry no values in a GraphDef made only for TF's shape inference,
# which reads small ones alone (shapes, axes): encoding and importing Inception V3's weights took 0.9 s.
SHAPE_ONLY_ELEMENTS = 1024


def graph_def_from_graph(graph: Graph, values: bool = True) -> GraphDef:
    """The graph as a GraphDef; values=False leaves large constants without their values (dtype and
    shape only), for TF's shape inference and nothing that runs."""
    graph_def = GraphDef()
    for node in graph.nodes:
        nd = graph_def.node.add(name=node.name, op=node.op)
        nd.input.extend(node.inputs)
        for key, value in node.attrs.items():
            if not values and isinstance(value, np.ndarray) and value.size > SHAPE_ONLY_ELEMENTS:
                nd.attr[key].tensor.dtype = tf.dtypes.as_dtype(value.dtype).as_datatype_enum
                nd.attr[key].tensor.tensor_shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
            else:
                nd.attr[key].CopyFrom(_encode_attr(value))
    return graph_def


def _encode_shape(shape: ShapeAttr) -> tensor_shape_pb2.TensorShapeProto:
    if getattr(shape, "unknown_rank", False):
        return tensor_shape_pb2.TensorShapeProto(unknown_rank=True)
    return tf.TensorShape(list(shape)).as_proto()


def _encode_attr(value: Any) -> attr_value_pb2.AttrValue:
    if isinstance(value, DType):
        return attr_value_pb2.AttrValue(type=tf.dtypes.as_dtype(value).as_datatype_enum)
    if isinstance(value, ShapeAttr):
        return attr_value_pb2.AttrValue(shape=_encode_shape(value))
    if isinstance(value, np.ndarray):
        return attr_value_pb2.AttrValue(tensor=tf.make_tensor_proto(value))
    if isinstance(value, bool):
        return attr_value_pb2.AttrValue(b=value)
    if isinstance(value, (int, np.integer)):
        return attr_value_pb2.AttrValue(i=int(value))
    if isinstance(value, float):
        return attr_value_pb2.AttrValue(f=value)
    if isinstance(value, str):
        return attr_value_pb2.AttrValue(s=value.encode())
    if isinstance(value, list):
        lst = attr_value_pb2.AttrValue.ListValue()
        if value and isinstance(value[0], DType):
            lst.type.extend(tf.dtypes.as_dtype(v).as_datatype_enum for v in value)
        elif value and isinstance(value[0], ShapeAttr):
            lst.shape.extend(_encode_shape(v) for v in value)
        elif value and isinstance(value[0], str):
            lst.s.extend(v.encode() for v in value)
        elif value and isinstance(value[0], bool):
            lst.b.extend(value)
        elif value and isinstance(value[0], float):
            lst.f.extend(value)
        else:
            lst.i.extend(int(v) for v in value)
        return attr_value_pb2.AttrValue(list=lst)
    raise TypeError(f"cannot encode attribute value {value!r}")


def check_described(graph: Graph) -> None:
    """ModelError unless TF takes the graph (every op, attribute, dtype and input) and computes every
    tensor with the dtype and shape the graph says: a graph read from a file may say otherwise."""
    try:
        graph_def = graph_def_from_graph(graph, values=False)
    except Exception as e:  # noqa: BLE001  (any attribute value TF's protos cannot hold, as protobuf words it)
        raise ModelError(f"the graph is malformed: {type(e).__name__}: {first_line(e)}") from None
    infos = _output_infos(graph_def)
    for node in graph.nodes:
        if infos.get(node.name) != node.outputs:
            computed = ", ".join(t.describe() for t in infos.get(node.name, []))
            raise ModelError(f"the graph describes the outputs of {node.name!r} ({node.op}) as "
                             f"{', '.join(t.describe() for t in node.outputs) or 'nothing'}; TF computes {computed}")


def reannotate(graph: Graph) -> Graph:
    """Re-infer output dtypes/shapes after a rewrite."""
    return graph_from_graph_def(graph_def_from_graph(graph), graph.inputs, graph.outputs, graph.input_structure,
                                graph.output_structure)


def shape_problem(graph: Graph, input_shapes: Sequence[tuple[int, ...]]) -> str | None:
    """What TF's shape inference says is wrong with feeding inputs of these shapes (batch left open),
    or None. TF's own kernels do not always check: with its oneDNN kernels a 3x3 VALID convolution
    of a 2x3 image returns an array of the input's shape."""
    graph_def = graph_def_from_graph(graph)
    fixed = {split_ref(r)[0]: shape for r, shape in zip(graph.inputs, input_shapes)}
    for node in graph_def.node:
        if node.name in fixed:
            node.attr["shape"].CopyFrom(_encode_attr(ShapeAttr((None, *fixed[node.name][1:]))))
    try:
        _output_infos(graph_def)
    except ModelError as e:
        return str(e.__cause__ or e).strip().splitlines()[0]
    return None


# ------------------------------------------------------------------------------ running on TF

class KernelsMissing(RuntimeError):
    """TensorFlow has no working kernel in this process for ops of the graph."""


def onednn_kernels_on() -> bool:
    """Whether this process's TF runs its oneDNN kernels (TF_ENABLE_ONEDNN_OPTS, read once by TF
    when it is imported: measured on TF 2.21, setting it afterwards changes nothing)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


class TensorFlowSetupWarning(UserWarning):
    """TensorFlow started in a state itexlab would have set otherwise, and it cannot be changed now."""


def _warn_if_kernels_were_decided_before_itexlab() -> None:
    """TensorFlow imported before itexlab on a CPU without VNNI, BF16 or AMX read TF_ENABLE_ONEDNN_OPTS
    before itexlab could set it: its oneDNN kernels are off for the life of the process. Say so once,
    with what to do (a notebook's usual order: `import tensorflow` or `import keras` first)."""
    asked = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true", "on", "yes")
    if _IMPORTED_BEFORE_ITEXLAB and asked and not onednn_kernels_on():
        warnings.warn("TensorFlow (or Keras) was imported before itexlab, and on this CPU (no VNNI, BF16 or AMX) it "
                      "started without its oneDNN kernels; nothing can turn them on now. TF FP32 comparisons run on "
                      "TF's slower Eigen kernels and INC's legacy INT8 graph cannot run in this process. Import "
                      "itexlab first (or set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow starts) and restart.",
                      TensorFlowSetupWarning, stacklevel=2)


_warn_if_kernels_were_decided_before_itexlab()


def legacy_int8_function(graph: Graph, sample: np.ndarray) -> "GraphFunction":
    """INC's default INT8 output on stock TF. Its fused quantized ops have real kernels only among
    TF's oneDNN kernels; without them TF runs placeholders and fails with "Missing 0-th output".
    Tried on `sample` in a child process first (tried_graph_function)."""
    if not onednn_kernels_on():
        raise KernelsMissing("INC's legacy INT8 ops run only on TensorFlow's oneDNN kernels, which are off in this "
                             "process (TF_ENABLE_ONEDNN_OPTS=0, or TensorFlow imported before itexlab on a CPU "
                             "without VNNI, BF16 or AMX: import itexlab first)")
    return tried_graph_function(graph, sample)


class GraphFunction:
    """A (sub)graph compiled once into a TF function: numpy arrays in, numpy arrays out.

    This is how stock TF runs the FP32 model, the QDQ graph, INC's legacy INT8 graph, and the
    executor's TF segments of more than a few ops (smaller ones: OpByOp) — whole graphs on TF
    kernels, with TF's own graph optimizations.
    """

    def __init__(self, graph: Graph | GraphDef, inputs: Sequence[str], outputs: Sequence[str]):
        self.inputs, self.outputs = list(inputs), list(outputs)
        # called with the graph's own inputs: the model's inputs in any form (see ir.structure)
        self._nested = graph.inputs_nested if isinstance(graph, Graph) and self.inputs == graph.inputs \
            else structure.flat(self.inputs) if self.inputs else None
        if isinstance(graph, Graph):  # what the outputs need, and nothing else
            nodes = prune_and_sort(_padded_depthwise(graph.nodes), self.outputs + self.inputs)
            graph = Graph(nodes, graph.inputs, graph.outputs)
            infos = [graph.tensor(r) for r in self.inputs]
            graph_def = graph_def_from_graph(graph)
        else:
            graph_def = graph
            described = _output_infos(graph_def)
            infos = [described[split_ref(r)[0]][split_ref(r)[1]] for r in self.inputs]
        specs = [tf.TensorSpec(i.shape, i.dtype) for i in infos]

        def imported(*tensors):
            return tf.graph_util.import_graph_def(graph_def, name="", return_elements=[_tf_name(r) for r in self.outputs],
                                                  input_map={_tf_name(r): t for r, t in zip(self.inputs, tensors)})

        # A concrete function of the imported graph: a call costs ~250 us, a v1 wrapped and pruned
        # function's ~460-660 us (measured on the executor's TF segments, which pay it every run).
        self._fn = tf.function(imported, autograph=False).get_concrete_function(*specs)

    def __call__(self, *arrays) -> list[np.ndarray]:
        if self._nested is not None:
            arrays = structure.arguments(self._nested, arrays)
        results = self._fn(*[tf.constant(a) for a in arrays])
        return [np.asarray(r.numpy()) for r in results]  # a scalar too: numpy() gives it as np.int32, say


def _padded_depthwise(nodes: list[Node]) -> list[Node]:
    """A DepthwiseConv2dNative with EXPLICIT padding (INC folds Keras' ZeroPadding2D into it) as
    Pad + the same convolution VALID, the Keras model's own form: TF 2.21's remapper ends the
    process when it fuses the former with a BiasAdd ("tensor_format.h:428 Check failed: ... Invalid
    index from the dimension"; MobileNetV2's FP32 and QDQ graphs). The same numbers: zeros padded."""
    result = []
    for node in nodes:
        if node.op != "DepthwiseConv2dNative" or node.attrs.get("padding") != "EXPLICIT":
            result.append(node)
            continue
        pads = np.asarray(node.attrs["explicit_paddings"], np.int32).reshape(-1, 2)
        paddings = Node(f"{node.name}/itexlab_paddings", "Const", [], {"dtype": DType("int32"), "value": pads},
                        [TensorInfo("int32", pads.shape)])
        padded = Node(f"{node.name}/itexlab_pad", "Pad", [node.inputs[0], paddings.name],
                      {"T": node.attrs["T"], "Tpaddings": DType("int32")}, [TensorInfo(node.attrs["T"], None)])
        attrs = {k: v for k, v in node.attrs.items() if k != "explicit_paddings"}
        result += [paddings, padded, dataclasses.replace(node, inputs=[padded.name, *node.inputs[1:]],
                                                         attrs={**attrs, "padding": "VALID"})]
    return result


class OpByOp:
    """A small graph run op by op on TF's eager kernels: numpy arrays in, numpy arrays out, as
    GraphFunction. An eager op costs ~30 us a call, a function call ~150-250 us whatever it holds,
    so a TF segment of a few ops between two partitions runs this way (runtime.schedule). Raises
    NotEagerRunnable for a graph it cannot run so (attributes of kinds eager execution does not
    take, such as functions): such graphs stay GraphFunctions."""

    def __init__(self, graph: Graph, inputs: Sequence[str], outputs: Sequence[str]):
        from tensorflow.python.eager import context, execute

        self._execute, self._context = execute.execute, context.context
        self.inputs, self.outputs = list(inputs), list(outputs)
        graph = Graph(prune_and_sort(graph.nodes, self.outputs + self.inputs), graph.inputs, graph.outputs)
        definitions = {d.name: d for d in graph_def_from_graph(graph).node}
        # references normalized once here: a call only looks them up
        self._feeds, self._fetches = [normalize(r) for r in inputs], [normalize(r) for r in outputs]
        self._constants: dict[str, tf.Tensor] = {}
        self._ops = []  # (output references, op type, input references, attrs)
        for node in graph.nodes:
            if node.op == "Placeholder" or node.name in self._feeds:
                continue
            if node.op == "Const":
                self._constants[node.name] = _eager_constant(node)
                continue
            attrs = []
            for key, value in sorted(definitions[node.name].attr.items()):
                if not key.startswith("_"):
                    attrs += [key, _eager_attr(node, key, value)]
            self._ops.append(([ref(node.name, i) for i in range(len(node.outputs))], node.op.encode(),
                              [normalize(r) for r in node.inputs if not r.startswith("^")], tuple(attrs)))

    def __call__(self, *arrays) -> list[np.ndarray]:
        values = dict(self._constants)
        values.update((r, tf.constant(a)) for r, a in zip(self._feeds, arrays))
        ctx = self._context()
        for outputs, op, inputs, attrs in self._ops:
            values.update(zip(outputs, self._execute(op, len(outputs), [values[r] for r in inputs], attrs, ctx)))
        return [np.asarray(values[r].numpy()) for r in self._fetches]


def _eager_constant(node: Node) -> tf.Tensor:
    dtype, value = str(node.attrs["dtype"]), np.asarray(node.attrs["value"])
    if dtype in QUANTIZED_DTYPES:  # TF makes no qint8 tensor from numpy: the same bytes, bitcast
        return tf.bitcast(tf.constant(value.astype(QUANTIZED_DTYPES[dtype])), dtype)
    return tf.constant(value, dtype=dtype)


class NotEagerRunnable(ValueError):
    """A graph OpByOp cannot run (see there)."""


def _eager_attr(node: Node, key: str, value: attr_value_pb2.AttrValue):
    """An attribute as TF's eager execute takes it (as generated ops pass them)."""
    kind = value.WhichOneof("value")
    if kind in ("type", "i", "f", "b", "s"):
        return getattr(value, kind)
    if kind == "shape":
        return None if value.shape.unknown_rank else [d.size for d in value.shape.dim]
    if kind == "list":
        for field in ("type", "i", "f", "b", "s"):
            if getattr(value.list, field):
                return list(getattr(value.list, field))
        if value.list.shape:
            return [None if s.unknown_rank else [d.size for d in s.dim] for s in value.list.shape]
        if not (value.list.func or value.list.tensor):
            return []
    raise NotEagerRunnable(f"{node.op} {node.name}: attribute {key} ({kind}) is not taken by eager execution")


class TensorFlowAborted(RuntimeError):
    """TensorFlow ended the process running a graph (a failed internal check): no Python exception
    can catch that, so such graphs are tried in a child process first."""


def run_isolated(graph: Graph, arrays: Sequence[np.ndarray], env: dict[str, str] | None = None,
                 timeout: float = 600) -> list[np.ndarray]:
    """Run a graph on TF in a child process (this environment, updated with `env`) and return its
    outputs. TF 2.21's oneDNN kernels abort on some QDQ graphs (MobileNetV2's); here that becomes
    TensorFlowAborted with TF's own fatal line, and this process lives on."""
    with tempfile.TemporaryDirectory(prefix="itexlab-tf-") as folder:
        folder = pathlib.Path(folder)
        (folder / "graph.pb").write_bytes(graph_def_from_graph(graph).SerializeToString())
        np.savez(folder / "inputs.npz", *arrays)
        code = "import sys; from itexlab.frontend.tfgraph import _run_saved; _run_saved(sys.argv[1], sys.argv[2:])"
        done = subprocess.run([sys.executable, "-c", code, str(folder), *graph.inputs, "--", *graph.outputs],
                              env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            lines = [l for l in done.stderr.splitlines() if l.strip() and not l.lstrip().startswith("@")]
            fatal = [l for l in lines if "Check failed" in l or l.startswith(("F0000", "Traceback"))]
            raise TensorFlowAborted(f"TensorFlow {tf.__version__} ended the process running this graph (exit "
                                    f"{done.returncode}): {(fatal or lines or ['no message'])[0].strip()[:300]}")
        with np.load(folder / "outputs.npz") as saved:
            return [saved[f"arr_{i}"] for i in range(len(graph.outputs))]


def tried_graph_function(graph: Graph, sample) -> GraphFunction:
    """The whole graph as a GraphFunction, once it has run on `sample` (the model's inputs, in any
    form it takes) in a child process: INC's graphs run on TF's oneDNN kernels, which end the process
    on some models (MobileNetV2's QDQ graph); that becomes TensorFlowAborted here (see run_isolated)."""
    run_isolated(graph, [np.asarray(a) for a in structure.arguments(graph.inputs_nested, [sample])])
    return GraphFunction(graph, graph.inputs, graph.outputs)


def _run_saved(folder: str, references: list[str]) -> None:
    """The child side of run_isolated."""
    split = references.index("--")
    graph_def = GraphDef.FromString((pathlib.Path(folder) / "graph.pb").read_bytes())
    with np.load(pathlib.Path(folder) / "inputs.npz") as saved:
        arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    outputs = GraphFunction(graph_def, references[:split], references[split + 1:])(*arrays)
    np.savez(pathlib.Path(folder) / "outputs.npz", *outputs)


def _tf_name(reference: str) -> str:
    name, index = split_ref(reference)
    return f"{name}:{index}"


def evaluate(graph: Graph, references: Sequence[str]) -> list[np.ndarray]:
    """Evaluate tensors that depend on no graph input (constant subgraphs)."""
    sub = Graph(prune_and_sort(graph.nodes, list(references)), [], list(references))
    return GraphFunction(sub, [], references)()


def grappler_constant_folding(graph: Graph) -> Graph:
    """Run TF's own constant folding (what ITEX_TF_CONSTANT_FOLDING=1 lets happen) on a graph."""
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer

    graph_def = graph_def_from_graph(graph)
    for node in graph_def.node:  # INC pins ranges as HostConst, which grappler does not fold through
        if node.op == "HostConst":
            node.op = "Const"
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
        for reference in graph.outputs:
            g.add_to_collection("train_op", g.get_tensor_by_name(_tf_name(reference)))
    meta = tf.compat.v1.train.export_meta_graph(graph=g, graph_def=g.as_graph_def())
    config = config_pb2.ConfigProto()
    rewriter = config.graph_options.rewrite_options
    rewriter.optimizers.append("constfold")
    rewriter.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    optimized = tf_optimizer.OptimizeGraph(config, meta)
    return graph_from_graph_def(optimized, graph.inputs, graph.outputs, graph.input_structure, graph.output_structure)

