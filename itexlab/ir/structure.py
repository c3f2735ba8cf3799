"""How a model's inputs and outputs nest, over the flat lists of graph inputs and outputs every stage
works with: a single tensor, a list, a tuple or a dict with string keys, to any depth.

A structure is plain, JSON-able data: a leaf is the name of a graph input (or output) tensor; a
container is {"list": [...]}, {"tuple": [...]} or {"dict": {key: ...}}. Keras models, tf.functions
and tf.Modules give their own; a GraphDef has none, and its flat list is its structure.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

Structure = Any  # str | {"list": [...]} | {"tuple": [...]} | {"dict": {...}}


def flat(names: Sequence[str]) -> Structure:
    """The structure of a plain list of tensors (one tensor alone for a list of one)."""
    return names[0] if len(names) == 1 else {"list": list(names)}


def leaves(structure: Structure) -> list[str]:
    """The tensor names of a structure, in order (a dict's in its key order, as tf.nest flattens)."""
    if isinstance(structure, str):
        return [structure]
    (kind, inner), = structure.items()
    children = [inner[k] for k in sorted(inner)] if kind == "dict" else inner
    return [name for child in children for name in leaves(child)]


def from_nest(nest: Any, name_of: Callable[[Any], str]) -> Structure:
    """A structure from a nest of tensors (lists, tuples, dicts: what Keras and tf.nest use)."""
    if isinstance(nest, Mapping):  # keys in sorted order, as tf.nest flattens them
        return {"dict": {str(k): from_nest(nest[k], name_of) for k in sorted(nest)}}
    if isinstance(nest, (list, tuple)):
        return {"tuple" if isinstance(nest, tuple) else "list": [from_nest(v, name_of) for v in nest]}
    return name_of(nest)


def describe(structure: Structure) -> str:
    """In words, for messages: "a dict with keys 'input_ids', 'attention_mask'", "one tensor"."""
    if isinstance(structure, str):
        return "one tensor"
    (kind, inner), = structure.items()
    if kind == "dict":
        return f"a dict with keys {', '.join(repr(k) for k in inner)}"
    return f"a {kind} of {len(inner)}"


def describe_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"a dict with keys {', '.join(repr(k) for k in value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    shape = getattr(value, "shape", None)
    return f"an array of shape {tuple(shape)}" if shape is not None else f"a {type(value).__name__}"


def flatten(structure: Structure, value: Any) -> list[Any]:
    """The values for the structure's leaves, in order, from a value nested as the structure is, or
    as a flat list or tuple in leaf order, or as a dict keyed by the tensors' names (for one tensor:
    the value itself, a list of one, or a dict of one). ValueError says what was expected and what
    was given."""
    names = leaves(structure)
    if len(names) == 1 and not isinstance(value, (Mapping, list, tuple)):
        return [value]  # a one-input model takes its array as it is, however its signature nests it
    if isinstance(value, Mapping) and set(value) == set(names):
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and len(value) == len(names) and (
            len(names) == 1 or isinstance(structure, str) or "dict" in structure
            or any(not isinstance(child, str) for child in next(iter(structure.values())))):
        return list(value)  # flat, in the order of the tensors
    found: list[Any] = []
    _collect(structure, value, found, structure)
    return found


def _collect(structure: Structure, value: Any, found: list, whole: Structure) -> None:
    if isinstance(structure, str):
        if isinstance(value, (Mapping, list, tuple)):
            raise ValueError(f"expected {describe(whole)}, got {describe_value(value)} where one tensor belongs")
        found.append(value)
        return
    (kind, inner), = structure.items()
    if kind == "dict":
        if not isinstance(value, Mapping) or set(value) != set(inner):
            raise ValueError(f"expected {describe(structure)}, got {describe_value(value)}")
        for key in sorted(inner):
            _collect(inner[key], value[key], found, whole)
        return
    if not isinstance(value, (list, tuple)) or len(value) != len(inner):
        raise ValueError(f"expected {describe(structure)}, got {describe_value(value)}")
    for child, item in zip(inner, value):
        _collect(child, item, found, whole)


def pack(structure: Structure, values: Mapping[str, Any]) -> Any:
    """The values (by tensor name) nested as the structure is."""
    if isinstance(structure, str):
        return values[structure]
    (kind, inner), = structure.items()
    if kind == "dict":
        return {k: pack(v, values) for k, v in inner.items()}
    items = [pack(v, values) for v in inner]
    return tuple(items) if kind == "tuple" else items


def check(structure: Any, names: Sequence[str]) -> None:
    """ValueError unless `structure` is a structure whose leaves are exactly `names`, in order
    (a structure read from a file may be anything)."""
    def valid(s: Any) -> bool:
        if isinstance(s, str):
            return True
        if not isinstance(s, dict) or len(s) != 1:
            return False
        (kind, inner), = s.items()
        if kind == "dict":
            return isinstance(inner, dict) and all(isinstance(k, str) and valid(v) for k, v in inner.items())
        return kind in ("list", "tuple") and isinstance(inner, list) and all(valid(v) for v in inner)

    if not valid(structure) or leaves(structure) != list(names):
        raise ValueError(f"the structure {str(structure)[:80]} does not nest the tensors {list(names)[:8]}")


def arguments(structure: Structure, args: Sequence[Any]) -> list[Any]:
    """The flat inputs of a call: one argument in any form `flatten` takes, or one value per
    tensor, in order (model(x), model(inputs_dict), model(ids, mask))."""
    return flatten(structure, args[0] if len(args) == 1 else list(args))


def map_values(value: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn` applied to every array of a value nested in dicts, lists and tuples (to slice a batch
    of a multi-input model, say)."""
    if isinstance(value, Mapping):
        return {k: map_values(v, fn) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_values(v, fn) for v in value)
    return fn(value)


def first_value(value: Any) -> Any:
    """The first array of a nested value (its batch size is every input's)."""
    while isinstance(value, (Mapping, list, tuple)):
        value = next(iter(value.values())) if isinstance(value, Mapping) else value[0]
    return value
