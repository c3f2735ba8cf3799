// A compiled plan: oneDNN partitions and framework callbacks run in order in one native call.
#pragma once

#include "common.hpp"

#include <oneapi/dnnl/dnnl.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace itexlab {

// What a step does: run a oneDNN partition, call Python to run the framework's own kernels, view
// a plain tensor in another shape (reshape, no copy), transpose a plain tensor (a oneDNN reorder
// primitive), copy a strided window of one, or concatenate plain tensors (a oneDNN concat primitive).
enum class StepKind { partition, callback, view, transpose, slice, concat };

// One step of a plan as Python describes it. Inputs and outputs are tensor ids.
struct StepSpec {
    std::string kind;      // "partition", "callback", "view", "transpose", "slice" or "concat"
    size_t partition;      // index into the graph's partitions, for partition steps
    py::object callback;   // the callable, for callback steps
    std::vector<size_t> inputs;
    std::vector<size_t> outputs;
    std::string name;      // for error messages
    // view steps: the target shape (one -1 allowed); transposes: the order; slices, for an input of
    // rank r: r begins, r steps, r sizes (-1: the whole axis), then the output shape (one -1 allowed)
    std::vector<int64_t> view_shape;
    int64_t concat_axis = -1;         // for concat steps
};

class Program {
public:
    // dtypes: tensor id -> numpy dtype of every tensor the program passes around.
    // constants: tensor id -> numpy array (weights, biases) kept for the program's life.
    // opaque_ids: tensors read only by other partitions, which may stay in oneDNN's own layout.
    // shapes_per_step: how many input shapes each step keeps compiled (least recently used goes).
    Program(std::shared_ptr<OneDnnGraph> graph, std::vector<StepSpec> steps,
            std::vector<size_t> input_ids, std::vector<size_t> output_ids, const py::dict &dtypes,
            const py::dict &constants, const std::vector<size_t> &opaque_ids, size_t shapes_per_step);

    // Inputs are only read: read-only and memory-mapped arrays are taken as they are.
    py::list run(const py::sequence &inputs);

    // The accessors below wait for a run in another thread to finish (call them without the GIL).
    size_t compiled_count();
    // Bytes of intermediate buffers the program holds (reused across steps and runs).
    size_t pool_bytes();
    void set_profiling(bool on);
    // Per step: (calls, seconds in the step, compilations).
    std::vector<std::tuple<size_t, double, size_t>> profile();
    void reset_profile();

private:
    // Intermediate tensors live in pooled buffers: taken when a step writes the tensor, given
    // back after the last step that reads it, kept across runs (peak memory = the largest live set).
    // A callback's numpy view of a buffer shares its ownership: a buffer Python still holds (a
    // traceback, %debug) leaves the pool instead of being reused under it.
    struct Buffer {
        void *ptr = nullptr;
        size_t bytes = 0;
        bool busy = false;
        ~Buffer();
    };
    struct Compiled {
        std::vector<dg::logical_tensor> inputs;   // as compiled: the cache key
        std::vector<dg::logical_tensor> outputs;  // as queried after compilation
        dg::compiled_partition partition;         // partition steps
        dnnl::primitive primitive;                // concat and transpose steps
        size_t last_used = 0;                     // the run that used it last (least recently used goes)
    };
    struct Slot {
        size_t id;
        py::dtype np_dtype;
        dg::logical_tensor::data_type dtype;
        bool opaque_ok = false;
        bool is_output = false;
        bool is_constant = false;
        dg::logical_tensor desc;  // current shape and layout
        void *ptr = nullptr;
        py::object keep;          // numpy array owning ptr, when Python owns the memory
        int buffer = -1;          // pool buffer owning ptr, when the pool owns the memory
        size_t root;              // the slot whose memory this one views (itself unless a view)
        size_t last_use = 0;      // last step reading the memory of a root slot (SIZE_MAX: never freed)
    };
    struct Step {
        StepKind kind;
        const dg::partition *partition = nullptr;
        py::object callback;
        std::string name;
        std::vector<int64_t> view_shape;
        int64_t concat_axis = -1;
        std::vector<size_t> inputs;   // slot indices
        std::vector<size_t> outputs;  // slot indices
        std::vector<std::unique_ptr<Compiled>> compiled;
        size_t calls = 0, compilations = 0;
        std::chrono::nanoseconds time{0};
    };

    size_t slot_of(size_t id);
    py::dict dtypes_;
    Compiled *cached(Step &step);
    Compiled &remember(Step &step, std::unique_ptr<Compiled> compiled);
    Compiled &compiled_for(Step &step);
    Compiled &concat_for(Step &step);
    Compiled &transpose_for(Step &step);
    void plan_lifetimes();
    void *take_buffer(Slot &slot, size_t bytes);
    void release_after(size_t step_index);
    void place_output(Slot &slot, const dg::logical_tensor &desc);
    bool in_pool(const void *p) const;
    py::array view_for_python(const Slot &slot);
    void run_partition(Step &step);
    void run_concat(Step &step);
    void run_callback(Step &step);
    void run_view(Step &step);
    void run_transpose(Step &step);
    void run_slice(Step &step);

    std::shared_ptr<OneDnnGraph> graph_;
    std::vector<Slot> slots_;
    std::unordered_map<size_t, size_t> slot_index_;
    std::vector<Step> steps_;
    std::vector<std::shared_ptr<Buffer>> pool_;
    std::vector<std::vector<size_t>> released_after_;  // per step: root slots whose memory is free after it
    std::vector<size_t> input_slots_, output_slots_;
    size_t shapes_per_step_;
    size_t runs_ = 0;
    bool profiling_ = false;
    std::mutex mutex_;  // one run at a time; the accessors take it too
};

}  // namespace itexlab
