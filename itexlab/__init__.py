"""itexlab: INT8 quantization of TensorFlow models on CPU, partitioned and run with oneDNN Graph."""

from .config import PartitionConfig, QuantConfig
from .execute import CompiledModel
from .partition import Plan, make_plan
from .quantize import QuantizedModel, quantize

__all__ = ["CompiledModel", "PartitionConfig", "Plan", "QuantConfig", "QuantizedModel", "make_plan", "quantize"]
