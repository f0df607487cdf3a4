// Drives ckpt_torch_native for test_torch_native_interop.sh: a tiny model trained in C++ and
// saved, or a checkpoint from Python loaded, re-saved and stepped once more.
//   driver train OPT STEPS A.pt B.pt       train STEPS steps, save A, one more step, save B
//   driver resume OPT IN.pt SAME.pt NEXT.pt  load IN, save SAME at once, one step, save NEXT
// OPT: sgd | adam | amsgrad | adamw. Data and architecture match interop.py.
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "ckpt_torch_native.h"

namespace {

torch::nn::Sequential make_model() {
  return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::BatchNorm1d(8),
                               torch::nn::ReLU(), torch::nn::Linear(8, 2));
}

// Two parameter groups, so that Python's numbering across groups is exercised.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& kind,
                                                        torch::nn::Sequential& m, double lr0,
                                                        double lr1) {
  std::vector<torch::Tensor> g0 = m[0]->parameters(), g1;
  for (size_t k = 1; k < m->size(); ++k)
    for (auto& p : m[k]->parameters()) g1.push_back(p);
  namespace o = torch::optim;
  if (kind == "sgd") {
    std::vector<o::OptimizerParamGroup> groups{
        o::OptimizerParamGroup(g0, std::make_unique<o::SGDOptions>(
                                       o::SGDOptions(lr0).momentum(0.9).weight_decay(0.01))),
        o::OptimizerParamGroup(g1, std::make_unique<o::SGDOptions>(
                                       o::SGDOptions(lr1).momentum(0.5).nesterov(true)))};
    return std::make_unique<o::SGD>(groups, o::SGDOptions(lr0));
  }
  if (kind == "adam" || kind == "amsgrad") {
    const bool ams = kind == "amsgrad";
    std::vector<o::OptimizerParamGroup> groups{
        o::OptimizerParamGroup(g0, std::make_unique<o::AdamOptions>(
                                       o::AdamOptions(lr0).amsgrad(ams).weight_decay(0.001))),
        o::OptimizerParamGroup(g1, std::make_unique<o::AdamOptions>(
                                       o::AdamOptions(lr1).betas({0.8, 0.99}).amsgrad(ams)))};
    return std::make_unique<o::Adam>(groups, o::AdamOptions(lr0));
  }
  if (kind == "adamw") {
    std::vector<o::OptimizerParamGroup> groups{
        o::OptimizerParamGroup(g0, std::make_unique<o::AdamWOptions>(o::AdamWOptions(lr0))),
        o::OptimizerParamGroup(g1, std::make_unique<o::AdamWOptions>(
                                       o::AdamWOptions(lr1).weight_decay(0.05)))};
    return std::make_unique<o::AdamW>(groups, o::AdamWOptions(lr0));
  }
  return nullptr;
}

void step(torch::nn::Sequential& m, torch::optim::Optimizer& opt) {
  auto x = torch::sin(torch::arange(32, torch::kFloat32).reshape({8, 4}) * 0.37);
  auto y = torch::cos(torch::arange(16, torch::kFloat32).reshape({8, 2}) * 0.11);
  opt.zero_grad();
  auto loss = torch::mse_loss(m->forward(x), y);
  loss.backward();
  opt.step();
}

int check(const ckpt::Status& st) {
  if (st.ok()) return 0;
  std::cerr << "driver: " << st.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: driver train|resume OPT ...\n";
    return 2;
  }
  const std::string mode = argv[1], kind = argv[2];
  torch::manual_seed(1234);
  auto model = make_model();
  model->train();
  if (mode == "train") {
    auto opt = make_optimizer(kind, model, 0.05, 0.02);
    if (!opt) return 2;
    const int steps = std::atoi(argv[3]);
    for (int k = 0; k < steps; ++k) step(model, *opt);
    nlohmann::ordered_json hp = {{"epoch", steps}, {"optimizer", kind}, {"dropout", 0.25},
                                 {"layers", {4, 8, 2}}};
    if (int rc = check(ckpt::torch_native::save_checkpoint(argv[4], model.get(), opt.get(), hp)))
      return rc;
    step(model, *opt);
    return check(ckpt::torch_native::save_checkpoint(argv[5], model.get(), opt.get(),
                                                     {{"epoch", steps + 1}}));
  }
  if (mode == "resume") {
    // Deliberately wrong learning rates: loading must replace them with the file's.
    auto opt = make_optimizer(kind, model, 123.0, 456.0);
    if (!opt) return 2;
    auto loaded = ckpt::torch_native::load_checkpoint(argv[3], model.get(), opt.get());
    if (!loaded.ok()) return check(loaded.status());
    std::cout << loaded->hyperparameters.dump() << "\n";
    if (int rc = check(ckpt::torch_native::save_checkpoint(argv[4], model.get(), opt.get(),
                                                           loaded->hyperparameters)))
      return rc;
    step(model, *opt);
    return check(ckpt::torch_native::save_checkpoint(argv[5], model.get(), opt.get()));
  }
  return 2;
}
