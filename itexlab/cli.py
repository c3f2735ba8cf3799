"""The `itexlab` command."""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import tempfile


SAVED_HELP = ", or a folder `itexlab quantize --out` wrote"


def _model_help(saved: bool) -> str:
    from .measure.workloads import BUILTIN

    return f"built-in name ({', '.join(BUILTIN)}) or a .keras/.pb/SavedModel path" + (SAVED_HELP if saved else "")


def _saved(path: str) -> bool:
    """Whether a path names a saved itexlab model (a folder with its manifest)."""
    from .ir import store

    return (pathlib.Path(path) / store.MANIFEST).is_file()


def _load_array(path: str, what: str):
    """A model's inputs from a file: one numeric .npy array (a single-input model), or an .npz with
    one array per input name (any model); refused clearly when unusable. Pickles are never loaded."""
    import numpy as np

    file = pathlib.Path(path)
    if not file.is_file():
        _fail(f"{what} file '{file}' does not exist")
    try:
        data = np.load(file, allow_pickle=False)
        if not isinstance(data, np.ndarray):  # an .npz: the arrays by name
            with data:
                data = {name: data[name] for name in data.files}
    except (ValueError, OSError) as e:  # pickled object arrays, or not a .npy/.npz file at all
        _fail(f"'{file}' is not a numeric .npy array or an .npz of them ({e})")
    return data


def _fail(message: str):
    sys.exit(f"itexlab: {message}")


def _positive(text: str) -> int:
    """An argument that counts something: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _regex(text: str) -> str:
    """A regular expression, checked before any work starts."""
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {e}") from None
    return text


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as one `itexlab: ...` line like every other refusal."""

    def error(self, message: str):
        _fail(f"{self.prog.removeprefix('itexlab ') + ': ' if ' ' in self.prog else ''}{message} "
              f"(`{self.prog} --help` lists the arguments)")


# Virtual file systems: writing a result there changes the kernel's or a device's state, or fails.
NOT_FOR_RESULTS = ("/proc", "/sys", "/dev")


def _output_path(value: str | None, directory: bool = False) -> pathlib.Path | None:
    """Check an output path before any work starts, and create its missing parent folders: a run
    that takes minutes must not die at its end on a path it could have refused at its start. Root
    passes every os.access check, so the folder is tried by writing a probe file into it."""
    if value is None:
        return None
    path = pathlib.Path(value)
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            _fail(f"cannot write {path}: {parent} is a file, not a folder")
    if path.exists() and path.is_dir() != directory:
        _fail(f"cannot write {path}: it is {'a file' if directory else 'a folder'}")
    resolved = path.resolve()
    for root in map(pathlib.Path, NOT_FOR_RESULTS):
        if resolved == root or root in resolved.parents:
            _fail(f"cannot write {path}: it is under {root}, a virtual file system, not a place for results")
    if path.exists() and not directory and not path.is_file():
        _fail(f"cannot write {path}: it is not a regular file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as e:
        _fail(f"cannot write {path}: {path.parent} is not writable ({e.strerror})")
    return path


def _write(path: pathlib.Path | None, text: str, what: str) -> None:
    if path is not None:
        path.write_text(text)
        print(f"{what} written to {path}")


def _load_model(name_or_path: str, weights: str | None):
    """A built-in workload by name, or a user's model file with no data attached."""
    from .measure import workloads as models

    if name_or_path in models.APPLICATIONS:
        return models.application_workload(name_or_path, weights)
    if name_or_path in models.BUILTIN:
        return models.BUILTIN[name_or_path]()
    return None


def _workload(args):
    """The workload `bench` measures: a built-in one, or the user's model with its calibration data
    (whose first samples are also the inputs timed)."""
    from .measure import workloads as models

    workload = _load_model(args.model, args.weights)
    if workload is not None:
        return workload
    if not pathlib.Path(args.model).exists():
        _fail(f"'{args.model}' is neither a built-in model ({', '.join(models.BUILTIN)}) nor a model path")
    if not args.calibration:
        _fail("give calibration data with --calibration FILE.npy (samples first)")
    from .ir import structure

    data = _load_array(args.calibration, "calibration")
    sample = structure.map_values(data, lambda array: array[:32])
    return models.Workload(pathlib.Path(args.model).stem, args.model, data, None, sample, (1, 16))


def _quantized_for(args):
    """Quantize the model named on the command line; a QDQ graph is taken as it is."""
    from .config import QuantConfig
    from .frontend import tfgraph
    from .quant.quantization import quantize

    workload = _load_model(args.model, getattr(args, "weights", None))
    if workload is not None:
        model, data = workload.model, workload.calibration
    else:
        model = tfgraph.load(args.model)
        if model.count("QuantizeV2") and not args.calibration:
            return model  # already quantized: partition it as it is
        if not args.calibration:
            _fail("give calibration data with --calibration FILE.npy (samples first)")
        data = _load_array(args.calibration, "calibration")
    config = QuantConfig(calibration_batches=args.calibration_batches, algorithm=args.algorithm,
                         weight_granularity=args.granularity, keep_fp32=tuple(args.keep_fp32))
    return quantize(model, data, config).qdq


def _partition_config(args):
    from .config import PartitionConfig

    kwargs = {"offload_fp32": args.offload_fp32}
    if args.no_onednn_graph:
        kwargs["onednn_graph"] = False
    if args.constant_folding:
        kwargs["tf_constant_folding"] = True
    if args.weight_bits:
        kwargs["weight_bits"] = args.weight_bits
    return PartitionConfig(**kwargs)


def cmd_demo(args) -> None:
    from .measure.compare import main_job

    out = _output_path(args.json)
    report = main_job(args.models, args.repeats)
    _write(out, json.dumps(report.to_dict(), indent=1), "results")


def cmd_inspect(args) -> None:
    json_out, svg_out, html_out = _output_path(args.json), _output_path(args.svg), _output_path(args.html)
    if _saved(args.model):  # read as plain data: neither TensorFlow nor oneDNN is loaded
        from .ir import store

        plan = store.read_plan(args.model, with_arrays=False)
    else:
        from .lower.partition import make_plan

        plan = make_plan(_quantized_for(args), _partition_config(args))
    print(plan.summary())
    if args.verbose:
        for p in plan.partitions:
            print(f"\n[{p.id}] {p.name}\n    oneDNN: {' + '.join(p.onednn_ops)}\n"
                  f"    in:  {', '.join(t.describe() for t in p.inputs)}\n"
                  f"    out: {', '.join(t.describe() for t in p.outputs)}")
        for f in plan.fallback:
            print(f"TF: {f.name} ({f.op}): {f.reason}")
        if plan.seven_bit_ops:
            print(f"7-bit weights ({plan.isa}): {', '.join(plan.seven_bit_ops)}")
    _write(json_out, plan.to_json(), "plan")
    if svg_out or html_out:
        from .report import views

        if svg_out:
            _write(svg_out, views.render_svg(views.to_dot(plan, args.expand)), "graph view")
        if html_out:
            _write(html_out, views.standalone_html(plan, args.expand), "graph view")


def cmd_quantize(args) -> None:
    from .errors import TargetError
    from .ir import store
    from .lower.partition import make_plan
    from .runtime import saving

    out = _output_path(args.out, directory=True)
    try:
        store.check_target(out, args.force)  # before quantizing: a run must not die at its end
    except TargetError as e:
        _fail(str(e).replace("force=True", "--force"))
    qdq = _quantized_for(args)
    plan = make_plan(qdq, _partition_config(args))
    saving.save(plan, out, qdq=qdq, force=args.force)
    print(plan.summary())
    print(f"saved to {out}: run it with `itexlab run {out} --input x.npy --output y.npy`")


def cmd_run(args) -> None:
    import numpy as np

    from .runtime import saving

    output = _output_path(args.output)
    if output.exists() and not args.force:
        _fail(f"{output} exists (--force overwrites it)")
    model = saving.load(args.model, trust=args.trust)
    x = _load_array(args.input, "input")
    outputs = model(x)
    with open(output, "wb") as f:  # the name given, as given (np.save would add .npy to a path)
        if len(outputs) == 1:
            np.save(f, outputs[0])
        else:
            np.savez(f, *outputs)
    print(f"{len(outputs)} output(s) of shape {', '.join(str(o.shape) for o in outputs)} written to {output}"
          + ("" if len(outputs) == 1 else " (an .npz archive)"))


def cmd_bench(args) -> None:
    from .backend import cpu

    if args.threads:
        cpu.pin_threads(args.threads)  # before TensorFlow and oneDNN load
    json_out, markdown_out = _output_path(args.json), _output_path(args.markdown)
    from .measure import benchmark
    from .measure.systems import SYSTEMS, TFLITE_INT8

    if _saved(args.model):
        inputs = _load_array(args.input, "input") if args.input else None
        report = benchmark.run_saved(args.model, inputs, tuple(args.batch or (1, 16)), args.repeats, trust=args.trust)
        table = report.table(report.results[0].model)
        print(table)
        _write(json_out, json.dumps(report.to_dict(), indent=1), "results")
        _write(markdown_out, table + "\n", "tables")
        return
    systems = [s for s in (args.systems or SYSTEMS) if not (args.no_tflite and s == TFLITE_INT8.name)]
    workload = _workload(args)
    result = benchmark.run(workload, tuple(args.batch or workload.batch_sizes), args.repeats,
                           breakdown=args.breakdown, systems=tuple(systems), with_memory=not args.no_memory,
                           calibration_batches=args.calibration_batches)
    print(result.markdown())
    if args.breakdown:
        print("\nper-step time at batch 1 (ms):")
        for label, seconds in sorted(result.breakdown, key=lambda t: -t[1]):
            print(f"  {1000 * seconds:8.3f}  {label}")
    _write(json_out, json.dumps(result.to_dict(), indent=1), "results")
    _write(markdown_out, result.markdown() + "\n", "tables")


def _add_model_arguments(p: argparse.ArgumentParser, saved: bool = False) -> None:
    p.add_argument("model", help=_model_help(saved))
    p.add_argument("--calibration", help="calibration inputs, samples first: a .npy file, or an .npz with one array "
                                         "per input name for a model with several inputs")
    p.add_argument("--calibration-batches", type=_positive, default=10)
    p.add_argument("--algorithm", choices=["minmax", "kl"], default="minmax")
    p.add_argument("--granularity", choices=["per_channel", "per_tensor"], default="per_channel")
    p.add_argument("--keep-fp32", action="append", default=[], metavar="NODE_REGEX", type=_regex,
                   help="keep the ops whose names match this regular expression (from their start) in FP32")
    p.add_argument("--weights", help="weights of a built-in Keras application: a local file, or 'imagenet' when online")
    p.add_argument("--no-onednn-graph", action="store_true", help="same as ITEX_ONEDNN_GRAPH=0")
    p.add_argument("--constant-folding", action="store_true", help="same as ITEX_TF_CONSTANT_FOLDING=1")
    p.add_argument("--offload-fp32", action="store_true", help="offload FP32-only partitions too")
    p.add_argument("--weight-bits", type=int, choices=[7, 8],
                   help="bits of conv/matmul int8 weights (default: 7 where the CPU's int8 kernels lack VNNI/AMX)")


def main(argv: list[str] | None = None) -> None:
    parser = _Parser(prog="itexlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = sub.add_parser("demo", help="quantize, partition, run and compare the built-in models")
    from .measure.workloads import BUILTIN

    demo.add_argument("--models", nargs="+", default=["alexnet", "inception_v3"], choices=list(BUILTIN),
                      metavar="MODEL", help="built-in models: " + ", ".join(BUILTIN))
    demo.add_argument("--repeats", type=_positive, default=20)
    demo.add_argument("--json", help="also write the results as JSON")
    demo.set_defaults(func=cmd_demo)

    from .measure.systems import SYSTEMS

    benchmark = sub.add_parser("bench", help="benchmark FP32 and every INT8 path side by side")
    benchmark.add_argument("model", help=_model_help(saved=True))
    benchmark.add_argument("--input", help="for a saved model: inputs to time, a .npy file, samples first "
                                           "(default: random values in the calibrated range)")
    benchmark.add_argument("--calibration", help="calibration inputs as a .npy file, samples first (for a model path;"
                                                 " its first 32 samples are also the inputs timed)")
    benchmark.add_argument("--calibration-batches", type=_positive, default=10)
    benchmark.add_argument("--systems", nargs="+", choices=list(SYSTEMS), metavar="SYSTEM",
                           help="systems to compare with itexlab-int8 (default: all): " + ", ".join(SYSTEMS))
    benchmark.add_argument("--batch", type=_positive, nargs="+", help="batch sizes (default: the model's)")
    benchmark.add_argument("--repeats", type=_positive, default=40,
                           help="round-robin turns (default 40: a median of 20 moved by ~3%% on this shared machine)")
    benchmark.add_argument("--threads", type=_positive, help="threads for TF and oneDNN (default: all cores)")
    benchmark.add_argument("--trust", action="store_true", help="for a saved model: let it run ops that are not pure "
                                                                "tensor ops (file, I/O, Python): only if you trust its author")
    benchmark.add_argument("--weights", help="weights of a built-in Keras application: a local file")
    benchmark.add_argument("--breakdown", action="store_true", help="also time every executor step")
    benchmark.add_argument("--no-tflite", action="store_true", help="skip TFLite INT8 even when installed")
    benchmark.add_argument("--no-memory", action="store_true",
                           help="skip the peak-memory runs (a fresh process per system)")
    benchmark.add_argument("--json", help="write results as JSON")
    benchmark.add_argument("--markdown", help="write the table as Markdown")
    benchmark.set_defaults(func=cmd_bench)

    inspect = sub.add_parser("inspect", help="print a model's partition plan")
    _add_model_arguments(inspect, saved=True)
    inspect.add_argument("--json", help="write the plan as JSON")
    inspect.add_argument("-v", "--verbose", action="store_true", help="list every partition and TF op")
    inspect.add_argument("--svg", help="write the partition graph view as SVG")
    inspect.add_argument("--html", help="write the partition graph view and tables as an HTML page")
    inspect.add_argument("--expand", action="store_true", help="draw every partition's ops, not one box")
    inspect.set_defaults(func=cmd_inspect)

    quant = sub.add_parser("quantize", help="quantize a model and save it, ready to run (see README: saved models)")
    _add_model_arguments(quant)
    quant.add_argument("--out", required=True, help="output folder, new or empty")
    quant.add_argument("--force", action="store_true", help="replace an itexlab model saved in --out before")
    quant.set_defaults(func=cmd_quantize)

    run = sub.add_parser("run", help="run a saved model on inputs from a .npy file")
    run.add_argument("model", help="a folder `itexlab quantize --out` wrote")
    run.add_argument("--input", required=True, help="inputs as a .npy file, samples first")
    run.add_argument("--output", required=True, help=".npy file for the output (.npz holding each, for several)")
    run.add_argument("--force", action="store_true", help="overwrite --output")
    run.add_argument("--trust", action="store_true", help="let the model run ops that are not pure tensor ops (file, "
                                                          "I/O, Python): only if you trust its author")
    run.set_defaults(func=cmd_run)

    args = parser.parse_args(argv)
    from .errors import ItexlabError

    try:
        args.func(args)
    except ItexlabError as e:  # what the user gave cannot be used: say so in a line, no traceback
        _fail(str(e))


if __name__ == "__main__":
    main()
