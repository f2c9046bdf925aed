// CUDA graphs, which tch has no API for: capture the kernels a loop's step enqueues once, then
// launch them all with one call per step (`src/graph/mod.rs` owns their use).
//
// Built with `BEARD_CUDA_GRAPHS` when the libtorch the agent links carries CUDA (its
// `libtorch_cuda` and the CUDA runtime's headers); without it every call reports that graphs are
// not available, and the agent runs its steps one kernel at a time.
//
// The code references libtorch's and c10's CUDA libraries only, never the CUDA runtime itself:
// the agent then runs against any node's libtorch of the same version, whose CUDA runtime that
// libtorch finds on its own. So the capture's device and stream are set and restored through
// c10's functions, not through guards (whose inline event methods call the runtime).
#include "../native.h"

#ifdef BEARD_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

using beard::copy_message;

#ifdef BEARD_CUDA_GRAPHS

// A graph, and while it is being captured the device and stream that were current before.
struct BeardGraph {
    at::cuda::CUDAGraph graph;
    c10::cuda::CUDAStream previous_stream;
    c10::DeviceIndex previous_device;
    bool capturing = false;

    explicit BeardGraph(c10::DeviceIndex device)
        : previous_stream(c10::cuda::getCurrentCUDAStream(device)), previous_device(c10::cuda::current_device()) {}

    // Back to the device and stream that were current before the capture began.
    void restore_current() {
        if (capturing) {
            c10::cuda::setCurrentCUDAStream(previous_stream);
            c10::cuda::set_device(previous_device);
            capturing = false;
        }
    }
};

extern "C" {

// Starts capturing the work the calling thread enqueues on CUDA device `device`: with `device`
// current (the graph's memory pool belongs to the current device), on a side stream (CUDA
// captures no work of the legacy default stream), after all work enqueued before has finished,
// into the graph's private memory pool. Null with `*error` set on failure.
BeardGraph* beard_graph_begin(int device, char** error) {
    BeardGraph* graph = nullptr;
    try {
        auto index = static_cast<c10::DeviceIndex>(device);
        graph = new BeardGraph(index);
        c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, index);
        graph->capturing = true;
        c10::cuda::set_device(index);
        c10::cuda::device_synchronize();
        c10::cuda::setCurrentCUDAStream(side);
        graph->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
        return graph;
    } catch (const std::exception& e) {
        *error = copy_message(e.what());
    }
    if (graph != nullptr) {
        graph->restore_current();
        delete graph;
    }
    return nullptr;
}

// Ends the capture begun by `beard_graph_begin` and makes the graph ready to replay; the current
// stream is restored either way. 0 on success, else 1 with `*error` set.
int beard_graph_end(BeardGraph* graph, char** error) {
    try {
        graph->graph.capture_end();
        graph->restore_current();
        return 0;
    } catch (const std::exception& e) {
        graph->restore_current();
        *error = copy_message(e.what());
        return 1;
    }
}

// Launches the captured work once on the current stream. 0 on success, else 1 with `*error` set.
int beard_graph_replay(BeardGraph* graph, char** error) {
    try {
        graph->graph.replay();
        return 0;
    } catch (const std::exception& e) {
        *error = copy_message(e.what());
        return 1;
    }
}

void beard_graph_free(BeardGraph* graph) {
    graph->restore_current();
    delete graph;
}

}  // extern "C"

#else  // no CUDA in the libtorch the agent links

struct BeardGraph;

extern "C" {

BeardGraph* beard_graph_begin(int, char** error) {
    *error = copy_message("this agent was built against a libtorch without CUDA");
    return nullptr;
}

int beard_graph_end(BeardGraph*, char** error) {
    *error = copy_message("this agent was built against a libtorch without CUDA");
    return 1;
}

int beard_graph_replay(BeardGraph*, char** error) {
    *error = copy_message("this agent was built against a libtorch without CUDA");
    return 1;
}

void beard_graph_free(BeardGraph*) {}

}  // extern "C"

#endif
