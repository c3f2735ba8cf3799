"""TF -> oneDNN Graph translation rules, by op family: one rule per TF op type (`base.rule`), and
patterns for groups of TF ops that are one oneDNN op (`base.pattern`). Adding an op is one rule in
its family's module and one entry in the differential tests."""

from . import compute, elementwise, patterns, quantization, tensors  # noqa: F401  (they register their rules)
from .base import PATTERNS, RULES, Context, Untranslatable

__all__ = ["PATTERNS", "RULES", "Context", "Untranslatable"]
