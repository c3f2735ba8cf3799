"""Lowering a QDQ graph to a plan: QDQ rewrites (`qdq`), TF -> oneDNN Graph rules (`translate`),
partitioning (`partition`) and the memory-layout policy the executor follows (`layouts`).
May import: ir, backend, frontend, quant."""
