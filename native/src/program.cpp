#include "program.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace itexlab {

using lt = dg::logical_tensor;

Program::Buffer::~Buffer() { std::free(ptr); }

namespace {

void *aligned_buffer(size_t bytes) {
    size_t rounded = ((bytes + 63) / 64) * 64;
    void *p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) throw std::bad_alloc();
    return p;
}

lt strided(size_t id, lt::data_type dt, const std::vector<int64_t> &dims, bool constant = false) {
    return lt(id, dt, dims, lt::layout_type::strided,
              constant ? lt::property_type::constant : lt::property_type::variable);
}

std::vector<int64_t> array_dims(const py::array &a) {
    return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

bool same_dtype(const py::dtype &a, const py::dtype &b) { return a.num() == b.num(); }

std::vector<int64_t> dense_strides(const std::vector<int64_t> &dims) {
    std::vector<int64_t> strides(dims.size(), 1);
    for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
    return strides;
}

// Row-major without gaps. A dimension of size 1 may carry any stride (oneDNN gives them freely).
bool is_dense(const lt &desc) {
    if (desc.get_layout_type() != lt::layout_type::strided) return false;
    auto dims = desc.get_dims();
    auto strides = desc.get_strides(), dense = dense_strides(dims);
    for (size_t i = 0; i < dims.size(); ++i)
        if (dims[i] > 1 && strides[i] != dense[i]) return false;
    return true;
}

void require_dense(const lt &desc, const std::string &what) {
    if (!is_dense(desc)) throw std::logic_error(what + " is not in a dense plain layout");
}

// "2x10x10x4, 8x3" for error messages.
std::string shapes_of(const std::vector<lt> &descs) {
    std::string text;
    for (const auto &desc : descs) {
        text += text.empty() ? "" : ", ";
        std::string dims;
        for (auto d : desc.get_dims()) dims += (dims.empty() ? "" : "x") + std::to_string(d);
        text += dims.empty() ? "scalar" : dims;
    }
    return text;
}

StepKind step_kind(const std::string &name) {
    if (name == "partition") return StepKind::partition;
    if (name == "callback") return StepKind::callback;
    if (name == "view") return StepKind::view;
    if (name == "transpose") return StepKind::transpose;
    if (name == "slice") return StepKind::slice;
    if (name == "concat") return StepKind::concat;
    throw std::invalid_argument("unknown step kind '" + name + "'");
}

// The same memory as a oneDNN primitive sees it (graph and primitive data types share values).
dnnl::memory::desc plain_memory_desc(const lt &desc) {
    auto dims = desc.get_dims();
    return dnnl::memory::desc(dims, static_cast<dnnl::memory::data_type>(desc.get_data_type()), dense_strides(dims));
}


// The shape with its one -1 filled so that it holds `volume` elements; throws where none fits.
std::vector<int64_t> filled_shape(std::vector<int64_t> shape, int64_t volume, const std::string &what) {
    int64_t known = 1, unknown = 0;
    for (auto d : shape) {
        if (d < 0) unknown++;
        else known *= d;
    }
    if (unknown > 1) throw std::invalid_argument(what + ": more than one -1 in its target shape");
    for (auto &d : shape)
        if (d < 0) d = known ? volume / known : 0;
    int64_t result = 1;
    for (auto d : shape) result *= d;
    if (result != volume)
        throw std::invalid_argument(what + " cannot view " + std::to_string(volume) + " elements in its target shape");
    return shape;
}

// A slice step's window into an input of these dims: the window's dims, the input strides it
// reads with, and the element offset of its first element. Bounds are checked against the input.
struct Window {
    std::vector<int64_t> dims, strides;
    int64_t offset = 0;
};

Window slice_window(const std::vector<int64_t> &numbers, const std::vector<int64_t> &input, const std::string &name) {
    size_t rank = input.size();
    if (numbers.size() < 3 * rank)
        throw std::invalid_argument("slice '" + name + "' does not fit an input of rank " + std::to_string(rank));
    Window window;
    auto dense = dense_strides(input);
    for (size_t a = 0; a < rank; ++a) {
        int64_t begin = numbers[a], step = numbers[rank + a], size = numbers[2 * rank + a];
        if (size == -1 && begin == 0 && step == 1) size = input[a];
        if (begin < 0 || step < 1 || size < 1 || begin + (size - 1) * step >= input[a])
            throw std::invalid_argument("slice '" + name + "' reads outside its input (axis " + std::to_string(a) +
                                        " of length " + std::to_string(input[a]) + ")");
        window.dims.push_back(size);
        window.strides.push_back(dense[a] * step);
        window.offset += begin * dense[a];
    }
    return window;
}

}  // namespace

Program::Program(std::shared_ptr<OneDnnGraph> graph, std::vector<StepSpec> steps,
                 std::vector<size_t> input_ids, std::vector<size_t> output_ids, const py::dict &dtypes,
                 const py::dict &constants, const std::vector<size_t> &opaque_ids, size_t shapes_per_step)
    : dtypes_(dtypes), graph_(std::move(graph)), shapes_per_step_(shapes_per_step) {
    if (shapes_per_step_ == 0) throw std::invalid_argument("shapes_per_step must be at least 1");
    for (auto id : input_ids) input_slots_.push_back(slot_of(id));
    for (auto &spec : steps) {
        Step step;
        step.kind = step_kind(spec.kind);
        if (step.kind == StepKind::callback) {
            if (!PyCallable_Check(spec.callback.ptr()))
                throw std::invalid_argument("callback step '" + spec.name + "' has nothing to call");
            step.callback = spec.callback;
        }
        if (step.kind == StepKind::partition) step.partition = &graph_->partition_at(spec.partition);
        if ((step.kind == StepKind::view || step.kind == StepKind::transpose || step.kind == StepKind::slice) &&
            (spec.inputs.size() != 1 || spec.outputs.size() != 1))
            throw std::invalid_argument(spec.kind + " step '" + spec.name + "' needs one input and one output");
        if (step.kind == StepKind::transpose) {
            std::vector<int64_t> order = spec.view_shape;
            std::sort(order.begin(), order.end());
            for (size_t i = 0; i < order.size(); ++i)
                if (order[i] != static_cast<int64_t>(i))
                    throw std::invalid_argument("transpose step '" + spec.name + "' has no permutation as its order");
        }
        if (step.kind == StepKind::concat && (spec.inputs.empty() || spec.outputs.size() != 1 || spec.concat_axis < 0))
            throw std::invalid_argument("concat step '" + spec.name + "' needs inputs, one output and an axis");
        step.view_shape = spec.view_shape;
        step.concat_axis = spec.concat_axis;
        step.name = spec.name;
        for (auto id : spec.inputs) step.inputs.push_back(slot_of(id));
        for (auto id : spec.outputs) step.outputs.push_back(slot_of(id));
        steps_.push_back(std::move(step));
    }
    for (auto id : output_ids) {
        output_slots_.push_back(slot_of(id));
        slots_[output_slots_.back()].is_output = true;
    }
    for (auto id : opaque_ids) slots_[slot_of(id)].opaque_ok = true;
    for (auto item : constants) {
        auto &slot = slots_[slot_of(item.first.cast<size_t>())];
        auto array = py::array::ensure(item.second, py::array::c_style);
        if (!array) throw std::invalid_argument("constant is not a numpy array");
        if (!same_dtype(array.dtype(), slot.np_dtype))
            throw std::invalid_argument("constant " + std::to_string(slot.id) + " has the wrong dtype");
        slot.is_constant = true;
        slot.keep = array;
        slot.ptr = const_cast<void *>(array.data());  // oneDNN only reads constants
        slot.desc = strided(slot.id, slot.dtype, array_dims(array), true);
    }
    plan_lifetimes();
}

void Program::plan_lifetimes() {
    for (size_t s = 0; s < slots_.size(); ++s) slots_[s].root = s;
    for (size_t i = 0; i < steps_.size(); ++i) {
        const auto &step = steps_[i];
        if (step.kind == StepKind::view) slots_[step.outputs[0]].root = slots_[step.inputs[0]].root;
        for (const auto *list : {&step.inputs, &step.outputs})
            for (auto s : *list) {
                auto &root = slots_[slots_[s].root];
                root.last_use = std::max(root.last_use, i);
            }
    }
    for (auto s : output_slots_) slots_[slots_[s].root].last_use = SIZE_MAX;  // the caller reads it
    released_after_.assign(steps_.size(), {});
    for (size_t s = 0; s < slots_.size(); ++s)
        if (slots_[s].root == s && slots_[s].last_use != SIZE_MAX) released_after_[slots_[s].last_use].push_back(s);
}

// The smallest free buffer that fits; else the largest free one grows (a larger batch than
// before); else a new one. A free buffer that Python still holds a view of leaves the pool.
void *Program::take_buffer(Slot &slot, size_t bytes) {
    int best = -1, largest = -1;
    for (size_t i = 0; i < pool_.size(); ++i) {
        if (pool_[i]->busy) continue;
        if (pool_[i].use_count() > 1) pool_[i] = std::make_shared<Buffer>();  // the view owns the old one
        int k = static_cast<int>(i);
        if (pool_[i]->bytes >= bytes && (best < 0 || pool_[i]->bytes < pool_[best]->bytes)) best = k;
        if (largest < 0 || pool_[i]->bytes > pool_[largest]->bytes) largest = k;
    }
    if (best < 0) {
        if (largest < 0) {
            pool_.push_back(std::make_shared<Buffer>());
            largest = static_cast<int>(pool_.size() - 1);
        }
        auto &buffer = *pool_[largest];
        std::free(buffer.ptr);
        buffer.ptr = nullptr;
        buffer.bytes = 0;
        buffer.ptr = aligned_buffer(bytes);
        buffer.bytes = bytes;
        best = largest;
    }
    pool_[best]->busy = true;
    slot.buffer = best;
    return pool_[best]->ptr;
}

void Program::release_after(size_t step_index) {
    for (auto s : released_after_[step_index]) {
        auto &slot = slots_[s];
        if (slot.buffer >= 0) pool_[slot.buffer]->busy = false;
        slot.buffer = -1;
    }
}

void Program::place_output(Slot &slot, const lt &desc) {
    slot.desc = desc;
    if (slot.is_output) {  // the caller receives its own array
        py::gil_scoped_acquire acquire;
        py::array fresh(slot.np_dtype, slot.desc.get_dims());
        slot.ptr = fresh.mutable_data();
        slot.keep = fresh;
    } else {
        slot.ptr = take_buffer(slot, desc.get_mem_size());
    }
}

bool Program::in_pool(const void *p) const {
    auto *address = static_cast<const char *>(p);
    for (const auto &b : pool_) {
        auto *begin = static_cast<const char *>(b->ptr);
        if (address >= begin && address < begin + b->bytes) return true;
    }
    return false;
}

size_t Program::slot_of(size_t id) {
    auto it = slot_index_.find(id);
    if (it != slot_index_.end()) return it->second;
    if (!dtypes_.contains(py::int_(id)))
        throw std::invalid_argument("tensor " + std::to_string(id) + " has no dtype");
    Slot slot;
    slot.id = id;
    slot.np_dtype = py::dtype::from_args(dtypes_[py::int_(id)]);
    slot.dtype = dtype_from_numpy(slot.np_dtype);
    slots_.push_back(std::move(slot));
    slot_index_[id] = slots_.size() - 1;
    return slots_.size() - 1;
}

// The step compiled for the current input shapes and layouts, if it was.
Program::Compiled *Program::cached(Step &step) {
    for (auto &c : step.compiled) {
        bool same = true;
        for (size_t i = 0; i < step.inputs.size() && same; ++i)
            same = c->inputs[i].is_equal(slots_[step.inputs[i]].desc);
        if (same) {
            c->last_used = runs_;
            return c.get();
        }
    }
    return nullptr;
}

// Keep a step's new compiled form, dropping the least recently used one beyond shapes_per_step_
// (a model served at many batch sizes would otherwise keep every one: 64 sizes, +48 MB).
Program::Compiled &Program::remember(Step &step, std::unique_ptr<Compiled> compiled) {
    if (step.compiled.size() >= shapes_per_step_) {
        auto oldest = std::min_element(step.compiled.begin(), step.compiled.end(),
                                       [](const auto &a, const auto &b) { return a->last_used < b->last_used; });
        step.compiled.erase(oldest);
    }
    compiled->last_used = runs_;
    step.compilations++;
    step.compiled.push_back(std::move(compiled));
    return *step.compiled.back();
}

Program::Compiled &Program::compiled_for(Step &step) {
    if (auto *c = cached(step)) return *c;
    auto c = std::make_unique<Compiled>();
    for (auto s : step.inputs) c->inputs.push_back(slots_[s].desc);
    std::vector<lt> outputs;
    for (auto s : step.outputs) {
        const auto &slot = slots_[s];
        auto layout = slot.opaque_ok ? lt::layout_type::any : lt::layout_type::strided;
        outputs.emplace_back(slot.id, slot.dtype, DNNL_GRAPH_UNKNOWN_NDIMS, layout);
    }
    try {
        c->partition = step.partition->compile(c->inputs, outputs, cpu_engine());
    } catch (const dnnl::error &e) {
        throw CompileError("oneDNN could not compile partition '" + step.name + "' for inputs (" +
                           shapes_of(c->inputs) + "): " + e.what());
    }
    for (auto s : step.outputs) c->outputs.push_back(c->partition.query_logical_tensor(slots_[s].id));
    for (const auto &out : c->outputs)
        for (auto d : out.get_dims())
            if (d <= 0)  // e.g. a 3x3 VALID convolution of a 2x3 image
                throw std::invalid_argument("inputs of shape " + shapes_of(c->inputs) + " are too small for '" +
                                            step.name + "': its output would be " + shapes_of({out}));
    return remember(step, std::move(c));
}

void Program::run_partition(Step &step) {
    Compiled &c = compiled_for(step);
    std::vector<dg::tensor> ins, outs;
    for (size_t i = 0; i < step.inputs.size(); ++i)
        ins.emplace_back(c.inputs[i], cpu_engine(), slots_[step.inputs[i]].ptr);
    for (size_t i = 0; i < step.outputs.size(); ++i) {
        auto &slot = slots_[step.outputs[i]];
        place_output(slot, c.outputs[i]);
        outs.emplace_back(slot.desc, cpu_engine(), slot.ptr);
    }
    c.partition.execute(cpu_stream(), ins, outs);
}

Program::Compiled &Program::concat_for(Step &step) {
    if (auto *c = cached(step)) return *c;
    auto c = std::make_unique<Compiled>();
    auto axis = step.concat_axis;
    std::vector<dnnl::memory::desc> sources;
    std::vector<int64_t> dims;
    for (auto s : step.inputs) {
        const auto &desc = slots_[s].desc;
        require_dense(desc, "an input of concat '" + step.name + "'");
        auto in = desc.get_dims();
        if (dims.empty()) {
            if (axis >= static_cast<int64_t>(in.size()))
                throw std::invalid_argument("concat '" + step.name + "': axis out of range");
            dims = in;
        } else {
            bool fits = in.size() == dims.size();
            for (size_t d = 0; d < in.size() && fits; ++d) fits = static_cast<int64_t>(d) == axis || in[d] == dims[d];
            if (!fits)
                throw std::invalid_argument("concat '" + step.name + "': input shapes differ off the concat axis");
            dims[axis] += in[axis];
        }
        sources.push_back(plain_memory_desc(desc));
        c->inputs.push_back(desc);
    }
    const auto &out = slots_[step.outputs[0]];
    c->outputs.push_back(strided(out.id, out.dtype, dims));
    auto destination = plain_memory_desc(c->outputs[0]);
    c->primitive = dnnl::concat(dnnl::concat::primitive_desc(cpu_engine(), destination, static_cast<int>(axis), sources));
    return remember(step, std::move(c));
}

// A transpose as one reorder: the input read through strides permuted like its dimensions, into a
// dense output (TF's Transpose: output dimension i is input dimension order[i]).
Program::Compiled &Program::transpose_for(Step &step) {
    if (auto *c = cached(step)) return *c;
    auto c = std::make_unique<Compiled>();
    const auto &in = slots_[step.inputs[0]].desc;
    require_dense(in, "the input of transpose '" + step.name + "'");
    auto dims = in.get_dims();
    if (step.view_shape.size() != dims.size())
        throw std::invalid_argument("transpose '" + step.name + "': its order does not fit a tensor of rank " +
                                    std::to_string(dims.size()));
    auto strides = dense_strides(dims);
    std::vector<int64_t> out_dims, read_strides;
    for (auto axis : step.view_shape) {
        out_dims.push_back(dims[axis]);
        read_strides.push_back(strides[axis]);
    }
    auto dt = static_cast<dnnl::memory::data_type>(in.get_data_type());
    dnnl::memory::desc source(out_dims, dt, read_strides), destination(out_dims, dt, dense_strides(out_dims));
    c->inputs.push_back(in);
    const auto &out = slots_[step.outputs[0]];
    c->outputs.push_back(strided(out.id, out.dtype, out_dims));
    c->primitive = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), source, cpu_engine(), destination));
    return remember(step, std::move(c));
}

void Program::run_transpose(Step &step) {
    Compiled &c = transpose_for(step);
    auto &slot = slots_[step.outputs[0]];
    place_output(slot, c.outputs[0]);
    auto dims = c.outputs[0].get_dims();
    std::vector<int64_t> read_strides;
    auto strides = dense_strides(c.inputs[0].get_dims());
    for (auto axis : step.view_shape) read_strides.push_back(strides[axis]);
    auto dt = static_cast<dnnl::memory::data_type>(c.inputs[0].get_data_type());
    dnnl::memory source(dnnl::memory::desc(dims, dt, read_strides), cpu_engine(), slots_[step.inputs[0]].ptr);
    dnnl::memory destination(plain_memory_desc(c.outputs[0]), cpu_engine(), slot.ptr);
    c.primitive.execute(cpu_stream(), {{DNNL_ARG_SRC, source}, {DNNL_ARG_DST, destination}});
}

void Program::run_concat(Step &step) {
    Compiled &c = concat_for(step);
    std::unordered_map<int, dnnl::memory> args;
    for (size_t i = 0; i < step.inputs.size(); ++i)
        args[DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i)] =
            dnnl::memory(plain_memory_desc(c.inputs[i]), cpu_engine(), slots_[step.inputs[i]].ptr);
    auto &slot = slots_[step.outputs[0]];
    place_output(slot, c.outputs[0]);
    args[DNNL_ARG_DST] = dnnl::memory(plain_memory_desc(c.outputs[0]), cpu_engine(), slot.ptr);
    c.primitive.execute(cpu_stream(), args);
}

// A read-only numpy view of a slot's memory for a callback, owned by what owns the memory: the
// numpy array the slot keeps, or its pool buffer (shared: see Buffer).
py::array Program::view_for_python(const Slot &slot) {
    require_dense(slot.desc, "tensor " + std::to_string(slot.id) + ", given to the framework,");
    const Slot &root = slots_[slot.root];
    py::object owner = root.keep;
    if (root.buffer >= 0)
        owner = py::capsule(new std::shared_ptr<Buffer>(pool_[root.buffer]),
                            [](void *p) { delete static_cast<std::shared_ptr<Buffer> *>(p); });
    if (owner.is_none()) throw std::logic_error("tensor " + std::to_string(slot.id) + " has no memory");
    py::array view(slot.np_dtype, slot.desc.get_dims(), {}, slot.ptr, owner);
    view.attr("flags").attr("writeable") = false;
    return view;
}

void Program::run_callback(Step &step) {
    cpu_stream().wait();  // the framework reads what the partitions wrote
    py::gil_scoped_acquire acquire;
    py::list args;
    for (auto s : step.inputs) args.append(view_for_python(slots_[s]));
    py::sequence results = step.callback(*args);
    if (results.size() != step.outputs.size())
        throw std::runtime_error("fallback subgraph returned " + std::to_string(results.size()) +
                                 " tensors, expected " + std::to_string(step.outputs.size()));
    for (size_t i = 0; i < step.outputs.size(); ++i) {
        auto &slot = slots_[step.outputs[i]];
        auto array = py::array::ensure(results[i], py::array::c_style);
        if (!array || !same_dtype(array.dtype(), slot.np_dtype))
            throw std::runtime_error("fallback subgraph output " + std::to_string(i) +
                                     " has the wrong dtype");
        if (in_pool(array.data()))  // the framework handed back our own memory: it will be reused
            array = py::array(array.dtype(), array_dims(array), {}, array.data());
        slot.keep = array;
        slot.ptr = const_cast<void *>(array.data());  // later steps only read it
        slot.desc = strided(slot.id, slot.dtype, array_dims(array));
    }
}

void Program::run_view(Step &step) {
    const auto &in = slots_[step.inputs[0]];
    auto &out = slots_[step.outputs[0]];
    require_dense(in.desc, "the input of view '" + step.name + "'");
    int64_t volume = 1;
    for (auto d : in.desc.get_dims()) volume *= d;
    out.ptr = in.ptr;  // the source slot keeps the memory alive; a view the caller receives is copied
    out.desc = strided(out.id, out.dtype, filled_shape(step.view_shape, volume, "reshape '" + step.name + "'"));
}

// A strided slice as a copy of a window of its input (oneDNN takes no memory descriptor whose
// strides overlap, as a step along the last axis larger than that axis' stride makes them), in
// contiguous runs where the last axis is read whole; the output then takes the slice's own shape.
void Program::run_slice(Step &step) {
    cpu_stream().wait();  // the input is complete
    const auto &in = slots_[step.inputs[0]];
    require_dense(in.desc, "the input of slice '" + step.name + "'");
    auto window = slice_window(step.view_shape, in.desc.get_dims(), step.name);
    size_t rank = window.dims.size();
    int64_t volume = 1;
    for (auto d : window.dims) volume *= d;
    std::vector<int64_t> shape(step.view_shape.begin() + 3 * static_cast<long>(rank), step.view_shape.end());
    auto &slot = slots_[step.outputs[0]];
    place_output(slot, strided(slot.id, slot.dtype, filled_shape(shape, volume, "slice '" + step.name + "'")));
    size_t element = dnnl::memory::data_type_size(static_cast<dnnl::memory::data_type>(in.desc.get_data_type()));
    const auto *source = static_cast<const char *>(in.ptr) + window.offset * element;
    auto *destination = static_cast<char *>(slot.ptr);
    int64_t run = rank ? window.dims[rank - 1] : 1, step_along = rank ? window.strides[rank - 1] : 1;
    std::vector<int64_t> index(rank ? rank - 1 : 0, 0);
    for (int64_t done = 0; done < volume; done += run) {
        int64_t offset = 0;
        for (size_t a = 0; a + 1 < rank; ++a) offset += index[a] * window.strides[a];
        if (step_along == 1) {
            std::memcpy(destination, source + offset * element, run * element);
        } else {
            for (int64_t i = 0; i < run; ++i)
                std::memcpy(destination + i * element, source + (offset + i * step_along) * element, element);
        }
        destination += run * element;
        for (size_t a = index.size(); a-- > 0;) {  // the next window position, last axis fastest
            if (++index[a] < window.dims[a]) break;
            index[a] = 0;
        }
    }
}

py::list Program::run(const py::sequence &inputs) {
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    {
        py::gil_scoped_release release;
        lock.lock();
    }
    if (inputs.size() != input_slots_.size())
        throw std::invalid_argument("expected " + std::to_string(input_slots_.size()) + " inputs, got " +
                                    std::to_string(inputs.size()));
    for (size_t i = 0; i < input_slots_.size(); ++i) {
        auto &slot = slots_[input_slots_[i]];
        auto array = py::array::ensure(inputs[i], py::array::c_style);
        if (!array || !same_dtype(array.dtype(), slot.np_dtype))
            throw std::invalid_argument("input " + std::to_string(i) + " has the wrong dtype");
        slot.keep = array;
        slot.ptr = const_cast<void *>(array.data());  // read only: oneDNN never writes a step's inputs
        slot.desc = strided(slot.id, slot.dtype, array_dims(array));
    }
    for (auto &buffer : pool_) buffer->busy = false;
    runs_++;
    // Python is entered again only by framework steps and for arrays the caller receives: taking
    // the GIL back after every partition cost up to 0.6 ms per Inception V3 run in a busy process.
    py::gil_scoped_release release;
    for (size_t i = 0; i < steps_.size(); ++i) {
        auto &step = steps_[i];
        auto start = profiling_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
        switch (step.kind) {
            case StepKind::partition: run_partition(step); break;
            case StepKind::callback: run_callback(step); break;
            case StepKind::concat: run_concat(step); break;
            case StepKind::view: run_view(step); break;
            case StepKind::transpose: run_transpose(step); break;
            case StepKind::slice: run_slice(step); break;
        }
        if (profiling_) {
            cpu_stream().wait();
            step.time += std::chrono::steady_clock::now() - start;
        }
        step.calls++;
        release_after(i);
    }
    cpu_stream().wait();
    py::gil_scoped_acquire acquire;
    py::list outputs;
    for (auto s : output_slots_) {
        auto &slot = slots_[s];
        bool owned = !slot.keep.is_none() && py::isinstance<py::array>(slot.keep) &&
                     py::array(slot.keep).data() == slot.ptr &&
                     array_dims(py::array(slot.keep)) == slot.desc.get_dims();
        if (owned) {
            outputs.append(slot.keep);
        } else {
            require_dense(slot.desc, "output tensor " + std::to_string(slot.id));
            outputs.append(py::array(slot.np_dtype, slot.desc.get_dims(), {}, slot.ptr));  // a copy
        }
    }
    for (auto &slot : slots_)
        if (!slot.is_constant) {
            slot.keep = py::object();
            slot.ptr = nullptr;
            slot.buffer = -1;
        }
    return outputs;
}

size_t Program::pool_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t bytes = 0;
    for (const auto &b : pool_) bytes += b->bytes;
    return bytes;
}

size_t Program::compiled_count() {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const auto &step : steps_) n += step.compiled.size();
    return n;
}

void Program::set_profiling(bool on) {
    std::lock_guard<std::mutex> lock(mutex_);
    profiling_ = on;
}

std::vector<std::tuple<size_t, double, size_t>> Program::profile() {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::tuple<size_t, double, size_t>> rows;
    for (const auto &step : steps_)
        rows.emplace_back(step.calls, std::chrono::duration<double>(step.time).count(), step.compilations);
    return rows;
}

void Program::reset_profile() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &step : steps_) {
        step.calls = 0;
        step.time = std::chrono::nanoseconds{0};
    }
}

}  // namespace itexlab
