// The evaluation trace: a few rows of the step's backend buffers read after each act() and env step, written as one
// JSON object per env and step.
#include "host/eval_trace.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>

#include "kernels/buffer.h"

namespace dyn {

namespace {

// A float as the double nearest its 7 significant digits, so the JSON holds "0.1", not "0.10000000149011612".
double shortest(float x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.7g", double(x));
  return std::strtod(text, nullptr);
}

// Columns [col, col + take) of row i of rows `width` wide (take < 0: the whole row), as a JSON array.
nlohmann::json row(const std::vector<float>& rows, int width, int64_t i, int col = 0, int take = -1) {
  nlohmann::json a = nlohmann::json::array();
  for (int k = 0; k < (take < 0 ? width : take); ++k) a.push_back(shortest(rows[size_t(i * width + col + k)]));
  return a;
}

}  // namespace

EvalTrace::EvalTrace(Backend b, int64_t envs) : b_(b), envs_(envs) {}

void EvalTrace::acted(const EnvSpec& spec, int episode, int t, const float* obs, const float* latent,
                      const ActionBatch& actions, const std::vector<AgentColumns>& agent) {
  const int64_t m = envs_;
  const std::vector<float> o = read_values(b_, obs, m * spec.obs_dim);
  const std::vector<float> z = read_values(b_, latent, m * spec.latent_dim);
  std::vector<int32_t> ai;
  std::vector<float> av;
  if (spec.discrete())
    ai = read_values(b_, actions.index, m);
  else
    av = read_values(b_, actions.value, m * spec.action_dim);
  std::vector<std::vector<float>> cols;
  for (const AgentColumns& c : agent) cols.push_back(read_values(b_, c.rows, m * c.stride));
  pending_.assign(size_t(m), {});
  for (int64_t i = 0; i < m; ++i) {
    nlohmann::json r = {{"env", i},
                        {"episode", episode},
                        {"t", t},
                        {"obs", row(o, spec.obs_dim, i)},
                        {"latent", row(z, spec.latent_dim, i)}};
    if (spec.discrete())
      r["action"] = ai[size_t(i)];
    else
      r["action"] = row(av, spec.action_dim, i);
    for (size_t k = 0; k < agent.size(); ++k)
      r[agent[k].name] = row(cols[k], agent[k].stride, i, agent[k].col, agent[k].width);
    pending_[size_t(i)] = std::move(r);
  }
}

void EvalTrace::stepped(const EnvSpec&, const StepBatch& out) {
  const int64_t m = envs_;
  const std::vector<float> r = read_values(b_, static_cast<const float*>(out.reward), m);
  const std::vector<int32_t> sid = read_values(b_, static_cast<const int32_t*>(out.session_id), m);
  const std::vector<uint8_t> send = read_values(b_, static_cast<const uint8_t*>(out.session_end), m);
  for (int64_t i = 0; i < m; ++i) {
    nlohmann::json& rec = pending_[size_t(i)];
    rec["reward"] = shortest(r[size_t(i)]);
    rec["session_id"] = sid[size_t(i)];
    rec["session_end"] = int(send[size_t(i)]);
    text_ += rec.dump() + "\n";
    ++records_;
  }
}

}  // namespace dyn
