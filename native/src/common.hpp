// Shared declarations of the itexlab native module: oneDNN Graph as a mechanism, no policy.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <oneapi/dnnl/dnnl_graph.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace itexlab {

namespace py = pybind11;
namespace dg = dnnl::graph;

// oneDNN cannot compile a partition for the input shapes it was given: the message begins
// "oneDNN could not compile partition '<step name>'" (Python may run that partition another way).
struct CompileError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The CPU engine and stream every partition is compiled for and run on.
dnnl::engine &cpu_engine();
dnnl::stream &cpu_stream();

dg::logical_tensor::data_type dtype_from_name(const std::string &name);
// oneDNN's type for a numpy dtype; undef for types oneDNN has not (only the framework touches those).
dg::logical_tensor::data_type dtype_from_numpy(const py::dtype &dt);

// Logical tensor as Python describes it: (id, dtype name, dims with -1 for unknown, constant?).
struct TensorSpec {
    size_t id;
    std::string dtype;
    std::vector<int64_t> dims;
    bool constant;
    dg::logical_tensor to_logical_tensor() const;
};

// One partition returned by oneDNN, described as plain data for Python.
struct PartitionInfo {
    size_t index;
    bool supported;
    std::vector<size_t> op_ids;
    std::vector<size_t> input_ids;
    std::vector<size_t> output_ids;
};

// A oneDNN Graph built op by op from Python, then split into partitions by oneDNN.
class OneDnnGraph {
public:
    OneDnnGraph();
    void add_op(size_t id, const std::string &kind, const std::vector<TensorSpec> &inputs,
                const std::vector<TensorSpec> &outputs, const py::dict &attrs, const std::string &name);
    std::vector<PartitionInfo> partition(const std::string &policy);
    const dg::partition &partition_at(size_t index) const;
    // Why oneDNN cannot compile a partition for these input shapes ("" when it can): oneDNN 3.2
    // reports some partitions supported that it then fails to compile.
    std::string compile_error(size_t index, const std::vector<TensorSpec> &inputs) const;

private:
    dg::graph graph_;
    std::vector<dg::partition> partitions_;
    bool partitioned_ = false;
};

}  // namespace itexlab
