// Building a oneDNN Graph from Python op descriptions and asking oneDNN for its partitions.
#include "common.hpp"

#include <stdexcept>
#include <unordered_map>

namespace itexlab {

using lt = dg::logical_tensor;

dnnl::engine &cpu_engine() {
    static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    return engine;
}

dnnl::stream &cpu_stream() {
    static dnnl::stream stream(cpu_engine());
    return stream;
}

lt::data_type dtype_from_name(const std::string &name) {
    static const std::unordered_map<std::string, lt::data_type> table = {
        {"f32", lt::data_type::f32}, {"bf16", lt::data_type::bf16}, {"f16", lt::data_type::f16},
        {"s8", lt::data_type::s8},   {"u8", lt::data_type::u8},     {"s32", lt::data_type::s32},
        {"boolean", lt::data_type::boolean}};
    auto it = table.find(name);
    if (it == table.end()) throw std::invalid_argument("unknown oneDNN data type '" + name + "'");
    return it->second;
}

lt::data_type dtype_from_numpy(const py::dtype &dt) {
    if (dt.is(py::dtype::of<float>())) return lt::data_type::f32;
    if (dt.is(py::dtype::of<int8_t>())) return lt::data_type::s8;
    if (dt.is(py::dtype::of<uint8_t>())) return lt::data_type::u8;
    if (dt.is(py::dtype::of<int32_t>())) return lt::data_type::s32;
    if (dt.is(py::dtype::of<bool>())) return lt::data_type::boolean;
    return lt::data_type::undef;
}

lt TensorSpec::to_logical_tensor() const {
    std::vector<int64_t> d(dims);
    for (auto &x : d)
        if (x < 0) x = DNNL_GRAPH_UNKNOWN_DIM;
    auto property = constant ? lt::property_type::constant : lt::property_type::variable;
    return lt(id, dtype_from_name(dtype), d, lt::layout_type::strided, property);
}

namespace {

dg::op::kind op_kind_from_name(const std::string &name) {
    using k = dg::op::kind;
    static const std::unordered_map<std::string, k> table = {
        {"Add", k::Add},           {"AvgPool", k::AvgPool},
        {"BiasAdd", k::BiasAdd},   {"Clamp", k::Clamp},
        {"Concat", k::Concat},     {"Convolution", k::Convolution},
        {"Dequantize", k::Dequantize}, {"MatMul", k::MatMul},
        {"MaxPool", k::MaxPool},   {"Multiply", k::Multiply},
        {"Quantize", k::Quantize}, {"ReduceMax", k::ReduceMax},
        {"ReduceMean", k::ReduceMean}, {"ReduceMin", k::ReduceMin},
        {"ReduceSum", k::ReduceSum}, {"ReLU", k::ReLU},
        {"Reorder", k::Reorder},
        {"SoftMax", k::SoftMax},   {"StaticReshape", k::StaticReshape},
        {"StaticTranspose", k::StaticTranspose}, {"TypeCast", k::TypeCast},
        {"Wildcard", k::Wildcard}, {"Sigmoid", k::Sigmoid},
        {"Tanh", k::Tanh},         {"Subtract", k::Subtract},
        {"Maximum", k::Maximum},   {"Minimum", k::Minimum},
        {"Divide", k::Divide},     {"SquaredDifference", k::SquaredDifference},
        {"Elu", k::Elu},           {"LeakyReLU", k::LeakyReLU},
        {"GELU", k::GELU},         {"HardSwish", k::HardSwish},
        {"HardSigmoid", k::HardSigmoid}, {"LayerNorm", k::LayerNorm},
        {"Exp", k::Exp},           {"Sqrt", k::Sqrt},
        {"Square", k::Square},     {"Abs", k::Abs},
        {"Interpolate", k::Interpolate}, {"ConvTranspose", k::ConvTranspose}};
    auto it = table.find(name);
    if (it == table.end()) throw std::invalid_argument("unknown oneDNN op kind '" + name + "'");
    return it->second;
}

dg::op::attr attr_from_name(const std::string &name) {
    using a = dg::op::attr;
    static const std::unordered_map<std::string, a> table = {
        {"alpha", a::alpha},           {"beta", a::beta},
        {"min", a::min},               {"max", a::max},
        {"scales", a::scales},         {"zps", a::zps},
        {"axis", a::axis},             {"axes", a::axes},
        {"groups", a::groups},         {"dilations", a::dilations},
        {"kernel", a::kernel},         {"order", a::order},
        {"pads_begin", a::pads_begin}, {"pads_end", a::pads_end},
        {"shape", a::shape},           {"strides", a::strides},
        {"exclude_pad", a::exclude_pad}, {"keep_dims", a::keep_dims},
        {"special_zero", a::special_zero}, {"transpose_a", a::transpose_a},
        {"transpose_b", a::transpose_b}, {"auto_broadcast", a::auto_broadcast},
        {"auto_pad", a::auto_pad},     {"data_format", a::data_format},
        {"qtype", a::qtype},           {"rounding_type", a::rounding_type},
        {"weights_format", a::weights_format}, {"epsilon", a::epsilon},
        {"begin_norm_axis", a::begin_norm_axis}, {"keep_stats", a::keep_stats},
        {"use_affine", a::use_affine}, {"output_padding", a::output_padding},
        {"sizes", a::sizes},           {"mode", a::mode},
        {"coordinate_transformation_mode", a::coordinate_transformation_mode}};
    auto it = table.find(name);
    if (it == table.end()) throw std::invalid_argument("unknown oneDNN op attribute '" + name + "'");
    return it->second;
}

void set_attr(dg::op &op, const std::string &name, const py::handle &value) {
    auto attr = attr_from_name(name);
    if (py::isinstance<py::bool_>(value)) {
        op.set_attr<bool>(attr, value.cast<bool>());
    } else if (py::isinstance<py::int_>(value)) {
        op.set_attr<int64_t>(attr, value.cast<int64_t>());
    } else if (py::isinstance<py::float_>(value)) {
        op.set_attr<float>(attr, value.cast<float>());
    } else if (py::isinstance<py::str>(value)) {
        op.set_attr<std::string>(attr, value.cast<std::string>());
    } else if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
        auto seq = value.cast<py::sequence>();
        if (seq.size() > 0 && py::isinstance<py::float_>(seq[0]))
            op.set_attr<std::vector<float>>(attr, value.cast<std::vector<float>>());
        else
            op.set_attr<std::vector<int64_t>>(attr, value.cast<std::vector<int64_t>>());
    } else {
        throw std::invalid_argument("attribute '" + name + "' has an unsupported value type");
    }
}

}  // namespace

OneDnnGraph::OneDnnGraph() : graph_(dnnl::engine::kind::cpu) {}

void OneDnnGraph::add_op(size_t id, const std::string &kind, const std::vector<TensorSpec> &inputs,
                         const std::vector<TensorSpec> &outputs, const py::dict &attrs,
                         const std::string &name) {
    if (partitioned_) throw std::logic_error("cannot add ops after partitioning");
    dg::op op(id, op_kind_from_name(kind), name);
    for (const auto &spec : inputs) op.add_input(spec.to_logical_tensor());
    for (const auto &spec : outputs) op.add_output(spec.to_logical_tensor());
    for (auto item : attrs) set_attr(op, item.first.cast<std::string>(), item.second);
    graph_.add_op(op);
}

std::vector<PartitionInfo> OneDnnGraph::partition(const std::string &policy) {
    if (partitioned_) throw std::logic_error("graph is already partitioned");
    dg::partition::policy p;
    if (policy == "fusion") p = dg::partition::policy::fusion;
    else if (policy == "debug") p = dg::partition::policy::debug;
    else throw std::invalid_argument("unknown partition policy '" + policy + "'");
    graph_.finalize();
    partitions_ = graph_.get_partitions(p);
    partitioned_ = true;
    std::vector<PartitionInfo> infos;
    for (size_t i = 0; i < partitions_.size(); ++i) {
        const auto &part = partitions_[i];
        PartitionInfo info{i, part.is_supported(), part.get_ops(), {}, {}};
        for (const auto &port : part.get_input_ports()) info.input_ids.push_back(port.get_id());
        for (const auto &port : part.get_output_ports()) info.output_ids.push_back(port.get_id());
        infos.push_back(std::move(info));
    }
    return infos;
}

std::string OneDnnGraph::compile_error(size_t index, const std::vector<TensorSpec> &inputs) const {
    const auto &part = partition_at(index);
    std::vector<lt> ins, outs;
    for (const auto &spec : inputs) ins.push_back(spec.to_logical_tensor());
    for (const auto &port : part.get_output_ports())
        outs.emplace_back(port.get_id(), port.get_data_type(), DNNL_GRAPH_UNKNOWN_NDIMS, lt::layout_type::strided);
    try {
        part.compile(ins, outs, cpu_engine());
    } catch (const dnnl::error &e) {
        return e.what();
    }
    return "";
}

const dg::partition &OneDnnGraph::partition_at(size_t index) const {
    if (index >= partitions_.size()) throw std::out_of_range("no partition with that index");
    return partitions_[index];
}

}  // namespace itexlab
