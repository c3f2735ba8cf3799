"""Renderings of plain data: tables of a plan (`tables`), DOT/SVG/HTML (`views`), notebook
widgets (`widgets`) and plots (`plots`). Drawing and tabulating a plan imports neither TensorFlow
nor the native module. May import: ir, measure (the reports it plots)."""
