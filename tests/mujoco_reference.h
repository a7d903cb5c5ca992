// MuJoCo 2.2.2 as the live reference of the planar engine's tests (test-only: the simulator never links it).
// Loads our MJCF from tests/data, sets states and reads back what MuJoCo computes.
#pragma once

#include <mujoco/mujoco.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace dyn {

class MujocoReference {
 public:
  explicit MujocoReference(const std::string& xml_name) {
    const std::string path = std::string(DYN_TEST_DATA) + "/" + xml_name;
    char error[1000] = "";
    model_ = mj_loadXML(path.c_str(), nullptr, error, sizeof(error));
    if (!model_) throw std::runtime_error("MuJoCo could not load " + path + ": " + error);
    data_ = mj_makeData(model_);
  }
  ~MujocoReference() {
    mj_deleteData(data_);
    mj_deleteModel(model_);
  }
  MujocoReference(const MujocoReference&) = delete;
  MujocoReference& operator=(const MujocoReference&) = delete;

  mjModel* m() const { return model_; }
  mjData* d() const { return data_; }
  int nv() const { return model_->nv; }

  void set_state(const std::vector<double>& q, const std::vector<double>& qd, const std::vector<double>& ctrl = {}) {
    mj_resetData(model_, data_);
    for (int j = 0; j < model_->nq; ++j) data_->qpos[j] = q[size_t(j)];
    for (int j = 0; j < model_->nv; ++j) data_->qvel[j] = qd[size_t(j)];
    for (size_t a = 0; a < ctrl.size(); ++a) data_->ctrl[a] = ctrl[a];
  }
  void forward() { mj_forward(model_, data_); }
  void step() { mj_step(model_, data_); }
  std::vector<double> full_mass_matrix() const {
    std::vector<double> M(size_t(model_->nv) * model_->nv);
    mj_fullM(model_, M.data(), data_->qM);
    return M;
  }
  std::vector<double> qpos() const { return {data_->qpos, data_->qpos + model_->nq}; }
  std::vector<double> qvel() const { return {data_->qvel, data_->qvel + model_->nv}; }
  std::vector<double> vec(const mjtNum* p, int n) const { return {p, p + n}; }
  // Body b's inertia about its centre of mass for the world axis `axis` (0 x, 1 y, 2 z) at the model's pose.
  double body_inertia_about(int b, int axis) const {
    double R[9];
    mju_quat2Mat(R, model_->body_iquat + 4 * b);
    double s = 0;  // (R diag(I) Rᵀ)_aa
    for (int k = 0; k < 3; ++k) s += R[3 * axis + k] * R[3 * axis + k] * model_->body_inertia[3 * b + k];
    return s;
  }

 private:
  mjModel* model_ = nullptr;
  mjData* data_ = nullptr;
};

}  // namespace dyn
