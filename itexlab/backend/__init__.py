"""The machine: oneDNN behind one boundary module (`onednn`, the only importer of the native
module `_native`) and what the CPU is (`cpu`). Mechanism only: it answers and runs, it decides
nothing. May import: ir."""
