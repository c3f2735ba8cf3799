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
