// Python bindings only: the mechanism lives in onednn_graph.cpp and program.cpp.
#include "program.hpp"

namespace py = pybind11;
using namespace itexlab;

PYBIND11_MODULE(_native, m) {
    m.doc() = "oneDNN Graph partitioning and the native executor of itexlab";
    py::register_exception<CompileError>(m, "CompileError", PyExc_RuntimeError);

    py::class_<TensorSpec>(m, "TensorSpec")
        .def(py::init<size_t, std::string, std::vector<int64_t>, bool>(), py::arg("id"),
             py::arg("dtype"), py::arg("dims"), py::arg("constant") = false)
        .def_readonly("id", &TensorSpec::id)
        .def_readonly("dtype", &TensorSpec::dtype)
        .def_readonly("dims", &TensorSpec::dims)
        .def_readonly("constant", &TensorSpec::constant);

    py::class_<PartitionInfo>(m, "PartitionInfo")
        .def_readonly("index", &PartitionInfo::index)
        .def_readonly("supported", &PartitionInfo::supported)
        .def_readonly("op_ids", &PartitionInfo::op_ids)
        .def_readonly("input_ids", &PartitionInfo::input_ids)
        .def_readonly("output_ids", &PartitionInfo::output_ids);

    py::class_<OneDnnGraph, std::shared_ptr<OneDnnGraph>>(m, "OneDnnGraph")
        .def(py::init<>())
        .def("add_op", &OneDnnGraph::add_op, py::arg("id"), py::arg("kind"), py::arg("inputs"),
             py::arg("outputs"), py::arg("attrs"), py::arg("name"))
        .def("partition", &OneDnnGraph::partition, py::arg("policy") = "fusion")
        .def("compile_error", &OneDnnGraph::compile_error, py::arg("index"), py::arg("inputs"));

    py::class_<StepSpec>(m, "StepSpec")
        .def(py::init<std::string, size_t, py::object, std::vector<size_t>, std::vector<size_t>, std::string,
                      std::vector<int64_t>, int64_t>(),
             py::arg("kind"), py::arg("partition"), py::arg("callback"), py::arg("inputs"), py::arg("outputs"),
             py::arg("name"), py::arg("view_shape") = std::vector<int64_t>{}, py::arg("concat_axis") = -1);

    // The accessors wait for a run in another thread: they release the GIL first, which that run
    // may need for a callback.
    using release = py::call_guard<py::gil_scoped_release>;
    py::class_<Program>(m, "Program")
        .def(py::init<std::shared_ptr<OneDnnGraph>, std::vector<StepSpec>, std::vector<size_t>,
                      std::vector<size_t>, const py::dict &, const py::dict &,
                      const std::vector<size_t> &, size_t>(),
             py::arg("graph"), py::arg("steps"), py::arg("input_ids"), py::arg("output_ids"),
             py::arg("dtypes"), py::arg("constants"), py::arg("opaque_ids"), py::arg("shapes_per_step"))
        .def("run", &Program::run, py::arg("inputs"))
        .def_property_readonly("compiled_count", [](Program &p) {
            py::gil_scoped_release unlocked;
            return p.compiled_count();
        })
        .def_property_readonly("pool_bytes", [](Program &p) {
            py::gil_scoped_release unlocked;
            return p.pool_bytes();
        })
        .def("set_profiling", &Program::set_profiling, release())
        .def("profile", &Program::profile, release())
        .def("reset_profile", &Program::reset_profile, release());

    m.def("set_constant_tensor_cache", [](bool on) { dg::set_constant_tensor_cache(on ? 1 : 0); },
          py::arg("on"));
    m.def("constant_tensor_cache", [] { return dg::get_constant_tensor_cache() != 0; });

    // The instruction set oneDNN dispatches its kernels for: the CPU's own, or less under
    // ONEDNN_MAX_CPU_ISA. Names as that variable spells them.
    m.def("effective_cpu_isa", [] {
        switch (dnnl::get_effective_cpu_isa()) {
            case dnnl::cpu_isa::sse41: return "SSE41";
            case dnnl::cpu_isa::avx: return "AVX";
            case dnnl::cpu_isa::avx2: return "AVX2";
            case dnnl::cpu_isa::avx2_vnni: return "AVX2_VNNI";
            case dnnl::cpu_isa::avx2_vnni_2: return "AVX2_VNNI_2";
            case dnnl::cpu_isa::avx512_core: return "AVX512_CORE";
            case dnnl::cpu_isa::avx512_core_vnni: return "AVX512_CORE_VNNI";
            case dnnl::cpu_isa::avx512_core_bf16: return "AVX512_CORE_BF16";
            case dnnl::cpu_isa::avx512_core_fp16: return "AVX512_CORE_FP16";
            case dnnl::cpu_isa::avx512_core_amx: return "AVX512_CORE_AMX";
            case dnnl::cpu_isa::avx512_core_amx_fp16: return "AVX512_CORE_AMX_FP16";
            default: return "DEFAULT";
        }
    });

    m.def("onednn_version", [] {
        const dnnl_version_t *v = dnnl_version();
        return py::make_tuple(v->major, v->minor, v->patch);
    });
}
