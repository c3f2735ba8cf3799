"""Typed configuration: quantization choices and ITEX's documented switches, validated on creation."""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Literal

from .errors import ConfigError

Granularity = Literal["per_channel", "per_tensor"]
Algorithm = Literal["minmax", "kl"]


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.strip().lower() in ("1", "true", "on", "yes"):
        return True
    if value.strip().lower() in ("0", "false", "off", "no"):
        return False
    raise ConfigError(f"{name}={value!r}: expected 0 or 1")


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """How INC calibrates and quantizes the FP32 graph."""

    weight_granularity: Granularity = "per_channel"
    algorithm: Algorithm = "minmax"          # activation calibration algorithm
    calibration_batches: int = 10
    keep_fp32: tuple[str, ...] = ()          # node names (regular expressions) INC must leave in FP32

    def __post_init__(self):
        if self.weight_granularity not in ("per_channel", "per_tensor"):
            raise ConfigError(f"weight_granularity must be 'per_channel' or 'per_tensor', "
                              f"not {self.weight_granularity!r}")
        if self.algorithm not in ("minmax", "kl"):
            raise ConfigError(f"algorithm must be 'minmax' or 'kl', not {self.algorithm!r}")
        if not isinstance(self.calibration_batches, int) or self.calibration_batches < 1:
            raise ConfigError(f"calibration_batches must be a positive integer, not {self.calibration_batches!r}")
        object.__setattr__(self, "keep_fp32", tuple(self.keep_fp32))
        for pattern in self.keep_fp32:
            try:
                re.compile(pattern)
            except (re.error, TypeError) as e:
                raise ConfigError(f"keep_fp32 pattern {pattern!r} is not a regular expression: {e}") from None


def check_speed_default() -> bool:
    """ITEXLAB_CHECK_SPEED=0 turns off the first-run INT8-vs-FP32 check of every CompiledModel that
    does not say otherwise (batch jobs, CI); on by default."""
    return _env_flag("ITEXLAB_CHECK_SPEED", True)


class ConfigWarning(UserWarning):
    """A configuration value that will have no effect on this model."""


@dataclasses.dataclass(frozen=True)
class PartitionConfig:
    """How the INT8 graph is partitioned. Defaults follow ITEX's environment switches.

    onednn_graph: ITEX_ONEDNN_GRAPH (default on): partition into oneDNN Graph ops at all.
    tf_constant_folding: ITEX_TF_CONSTANT_FOLDING (default off for INT8): let TF fold constants,
        which turns weight Quantize/Dequantize pairs into FP32 constants and breaks INT8 patterns.
    offload_fp32: also offload partitions that contain no Quantize/Dequantize (ITEX does not).
    weight_bits: 7 or 8 bits for the int8 weights of convolutions and matmuls; None (default)
        chooses 7 where oneDNN's int8 kernels would otherwise saturate (no VNNI or AMX), 8 elsewhere.
    """

    onednn_graph: bool = dataclasses.field(default_factory=lambda: _env_flag("ITEX_ONEDNN_GRAPH", True))
    tf_constant_folding: bool = dataclasses.field(
        default_factory=lambda: _env_flag("ITEX_TF_CONSTANT_FOLDING", False))
    offload_fp32: bool = False
    weight_bits: int | None = None

    def __post_init__(self):
        if self.weight_bits not in (None, 7, 8):
            raise ConfigError(f"weight_bits must be 7, 8 or None (chosen for the CPU), not {self.weight_bits!r}")
