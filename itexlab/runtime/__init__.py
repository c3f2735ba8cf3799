"""Running a plan: the order of its steps (`schedule`) and the native executor (`executor`).
May import: ir, backend, frontend, lower."""
