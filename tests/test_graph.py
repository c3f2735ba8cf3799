import pytest

from itexlab.ir.graph import Graph, Node, normalize, prune_and_sort, split_ref


def test_references():
    assert split_ref("conv") == ("conv", 0)
    assert split_ref("q:2") == ("q", 2)
    assert normalize("conv:0") == "conv"


def test_sort_puts_producers_first_and_prunes_dead_nodes():
    nodes = [Node("b", "Relu", ["a"]), Node("dead", "Relu", ["a"]), Node("a", "Placeholder", []),
             Node("c", "AddV2", ["a", "b:0"])]
    order = [n.name for n in prune_and_sort(nodes, ["c"])]
    assert order == ["a", "b", "c"]


def test_missing_input_is_reported():
    with pytest.raises(ValueError, match="missing node 'x'"):
        prune_and_sort([Node("b", "Relu", ["x"])], ["b"])


def test_duplicate_names_are_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        Graph([Node("a", "Placeholder", []), Node("a", "Relu", ["a"])], ["a"], ["a"])
