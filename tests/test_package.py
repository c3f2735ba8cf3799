"""The package's public names: what the README's first lines call."""

import pathlib
import subprocess
import sys

import itexlab


def test_public_names_stay_what_they_are_on_every_access():
    """`itexlab.quantize` was the function once and the submodule after its import bound the name."""
    code = ("import itexlab\n"
            "for name in itexlab.__all__:\n"
            "    first, second = getattr(itexlab, name), getattr(itexlab, name)\n"
            "    assert first is second and not isinstance(first, type(itexlab)), name\n"
            "assert callable(itexlab.quantize) and callable(itexlab.make_plan)\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_no_public_name_is_also_a_submodule():
    package = pathlib.Path(itexlab.__file__).parent
    clashes = [name for name in itexlab.__all__ if (package / f"{name}.py").exists() or (package / name).is_dir()]
    assert clashes == []


# The stages in the order they may import each other: a package imports only those before it
# (and the shared modules config and errors). The command line and the package's lazy public
# names sit above them all.
STAGES = ["ir", "backend", "frontend", "quant", "lower", "runtime", "measure", "report"]
SHARED = {"config", "errors"}
# A plan in a notebook cell draws itself: the one import of a later stage, made when asked to.
DRAWN_ON_DEMAND = {("ir", "report")}


def _imported_stages(path: pathlib.Path, package: pathlib.Path) -> set[str]:
    """The first-level itexlab packages/modules a module imports, relative or absolute."""
    import ast

    parts = path.relative_to(package).with_suffix("").parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(parts[:len(parts) - node.level])
                target = base + (node.module.split(".") if node.module else [])
                names = [target[0]] if target else [a.name for a in node.names]
            elif node.module and node.module.split(".")[0] == "itexlab":
                names = node.module.split(".")[1:2] or [a.name for a in node.names]
            else:
                continue
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("itexlab."))
    return found


def test_each_stage_imports_only_the_stages_before_it():
    package = pathlib.Path(itexlab.__file__).parent
    wrong = []
    for stage in STAGES:
        allowed = set(STAGES[:STAGES.index(stage) + 1]) | SHARED
        for path in sorted((package / stage).glob("*.py")):
            for imported in _imported_stages(path, package) - allowed:
                if (stage, imported) not in DRAWN_ON_DEMAND:
                    wrong.append(f"{path.relative_to(package)} imports {imported}")
    assert wrong == []
    assert {p.name for p in package.iterdir() if p.is_dir() and not p.name.startswith("_")} == set(STAGES)


def test_no_module_shadows_the_standard_library():
    package = pathlib.Path(itexlab.__file__).parent
    shadows = [str(p.relative_to(package)) for p in package.rglob("*.py") if p.stem in sys.stdlib_module_names]
    assert shadows == []
