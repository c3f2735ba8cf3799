"""Today's model families in small: a Keras transformer encoder block and a squeeze-and-excite block,
quantized, planned and run: their multiply-accumulates in INT8 partitions (INC's MatMuls and
itexlab's own quantizers for the batch matmuls INC leaves in FP32), Keras 3's LayerNorm, GELU and
hard swish as one oneDNN op each, and the results those of the same QDQ graph on stock TF."""

import keras
import numpy as np
import pytest
from conftest import oracle_graph, run_tf

import itexlab
from itexlab.backend import onednn
from itexlab.config import QuantConfig
from itexlab.ir.graph import MATMUL_OPS, macs
from itexlab.ir.plan import counts
from itexlab.lower.translate import translate
from itexlab.quant.matmuls import OWN

pytestmark = pytest.mark.numerics

RNG = np.random.default_rng(0)


def encoder_block():
    """A pre-norm transformer block as Keras writes it: MultiHeadAttention (EinsumDense projections,
    Einsum attention), LayerNormalization, a GELU Dense on a sequence, a classifier on the mean."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 32))
    x = inputs + keras.layers.MultiHeadAttention(4, 8)(*[keras.layers.LayerNormalization()(inputs)] * 2)
    h = keras.layers.Dense(64, activation="gelu")(keras.layers.LayerNormalization()(x))
    x = x + keras.layers.Dense(32)(h)
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling1D()(x)))


@pytest.fixture(scope="module")
def transformer():
    x = RNG.standard_normal((32, 16, 32)).astype(np.float32)
    quantized = itexlab.quantize(encoder_block(), x, QuantConfig(calibration_batches=4), progress=False)
    return quantized, itexlab.make_plan(quantized.qdq), x


def test_every_matmul_of_a_transformer_block_runs_in_int8(transformer):
    quantized, plan, _ = transformer
    matmuls = [n for n in plan.source.nodes if n.op in MATMUL_OPS]
    assert len(matmuls) >= 8 and all(macs(n, plan.source) > 0 for n in matmuls)  # attention's counted too
    int8 = {n.name for p in plan.partitions if p.quantized for n in p.nodes}
    assert {n.name for n in matmuls} <= int8
    assert counts(plan).int8_mac_share == 1.0
    own = [n for n in quantized.qdq.nodes if n.op == "QuantizeV2" and n.name.endswith(OWN)]
    assert own  # the batch matmuls INC leaves in FP32 got quantizers of itexlab's
    kinds = {kind for p in plan.partitions for kind in p.onednn_ops}
    assert {"LayerNorm", "GELU", "SoftMax"} <= kinds


def test_a_transformer_block_matches_its_qdq_graph_on_tf(transformer):
    quantized, plan, x = transformer
    got = itexlab.CompiledModel(plan)(x[:4])[0]
    expected = run_tf(oracle_graph(quantized.qdq, plan), x[:4])[0]
    scale = np.abs(expected).max() / 127
    assert np.abs(got - expected).max() <= 3 * scale
    fp32 = encoder_block()(x[:4]).numpy()
    assert np.abs(got - fp32).max() <= 0.05 * np.abs(fp32).max()  # INT8 close to the FP32 model


def test_attention_softmax_quantizes_its_output_only_where_onednn_has_a_jit_kernel_for_that(transformer):
    """oneDNN 3.2 runs a SoftMax with an int8 output with its reference kernel before AVX-512 (9.5 ms
    against 0.08 ms for BERT-base's): there the softmax writes f32 and a Quantize partition follows."""
    quantized, plan, _ = transformer
    softmaxes = [p for p in plan.partitions if "SoftMax" in p.onednn_ops]
    assert softmaxes
    for partition in softmaxes:
        if onednn.int8_softmax_is_reference(plan.isa):
            assert partition.onednn_ops == ["SoftMax"] and partition.outputs[0].dtype == "float32"
        else:
            assert partition.onednn_ops[-1] == "Quantize" and partition.outputs[0].dtype == "quint8"
    for isa, apart in (("AVX2", True), ("AVX512_CORE", False), ("AVX512_CORE_AMX", False)):
        ops = translate(quantized.qdq, isa=isa).ops
        softmax = next(op for op in ops if op.kind == "SoftMax")
        assert any(op.kind == "Wildcard" and op.inputs == softmax.outputs for op in ops) == apart, isa


def squeeze_excite_block():
    """MobileNetV3's: a hard-swish convolution, squeeze (mean with keep_dims), excite with hard sigmoid."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 8))
    x = keras.layers.Activation("hard_swish")(keras.layers.Conv2D(16, 3, padding="same")(inputs))
    s = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    s = keras.layers.Conv2D(4, 1, activation="relu")(s)
    s = keras.layers.Activation("hard_sigmoid")(keras.layers.Conv2D(16, 1)(s))
    return keras.Model(inputs, keras.layers.Conv2D(8, 1)(x * s))


def test_a_squeeze_excite_block_runs_in_onednn_end_to_end():
    x = RNG.uniform(-1, 1, (16, 12, 12, 8)).astype(np.float32)
    quantized = itexlab.quantize(squeeze_excite_block(), x, QuantConfig(calibration_batches=2), progress=False)
    plan = itexlab.make_plan(quantized.qdq)
    assert [f.op for f in plan.fallback] == ["Identity"], plan.fallback  # the squeeze is a pooling now
    kinds = {kind for p in plan.partitions for kind in p.onednn_ops}
    assert {"HardSwish", "AvgPool"} <= kinds
    # the hard sigmoid's +3 went into the convolution's bias (prepare's affine folding): relu6(.)/6 is
    # left, as post-ops of that convolution
    excite = next(p for p in plan.partitions if any(n.op == "RealDiv" for n in p.nodes))
    assert {"Conv2D", "Relu6", "RealDiv"} <= {n.op for n in excite.nodes} and excite.quantized
    got = itexlab.CompiledModel(plan)(x[:4])[0]
    expected = run_tf(oracle_graph(quantized.qdq, plan), x[:4])[0]
    assert np.abs(got - expected).max() <= 3 * np.abs(expected).max() / 127
