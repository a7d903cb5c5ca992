// StageGraphs: eager first call, capture on the second, replay after.
#include "kernels/check.h"
#include "kernels/graph.h"
#include "kernels/nvtx.h"

namespace dyn {

StageGraphs::~StageGraphs() {
  for (auto& kv : execs_) cudaGraphExecDestroy(kv.second);  // no throw from a destructor
}

void StageGraphs::run(int64_t key, const std::function<void()>& stage) {
  if (!enabled_) {
    stage();
    return;
  }
  auto it = execs_.find(key);
  if (it == execs_.end()) {
    if (calls_[key]++ == 0) {  // first call: eager, allocating what the stage needs
      stage();
      return;
    }
    DYN_NVTX_RANGE("graph_capture");
    const cudaStream_t s = cuda_stream();
    // thread-local mode: an allocation, a synchronous copy or a legacy-stream launch from this thread while
    // capturing is an error rather than a silently broken graph
    DYN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    try {
      stage();
    } catch (...) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(s, &broken);
      if (broken) cudaGraphDestroy(broken);
      throw;
    }
    cudaGraph_t graph = nullptr;
    DYN_CUDA_CHECK(cudaStreamEndCapture(s, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    DYN_CUDA_CHECK(e);
    it = execs_.emplace(key, exec).first;
  }
  DYN_CUDA_CHECK(cudaGraphLaunch(it->second, cuda_stream()));
  ++replays_;
}

}  // namespace dyn
