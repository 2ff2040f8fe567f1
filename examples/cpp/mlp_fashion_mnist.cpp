// The seed MLP, written against the C++ API the way the PyTorch script reads: a model class,
// Fashion-MNIST loaders, an Adam training loop and a test-set evaluation.
// 784-128-ReLU-10, Adam 1e-3, batch 128, 10 epochs (about 0.88 test accuracy).
// Usage: example_mlp_fashion_mnist [epochs] [data_dir]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "moxing/moxing.h"

using namespace moxing;

// class MLP(nn.Module)
struct MLP : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2;
  MLP() {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 128));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(128, 10));
  }
  // x (B,1,28,28) -> logits (B,10)
  Tensor forward(const Tensor& x) { return fc2->forward(relu(fc1->forward(x.flatten(1)))); }
  std::string type_name() const override { return "MLP"; }
};

int main(int argc, char** argv) {
  int epochs = argc > 1 ? std::atoi(argv[1]) : 10;
  std::string dir = argc > 2 ? argv[2] : data::kFashionMnistDir;
  try {
    manual_seed(0);
    auto train_set = std::make_shared<data::MnistDataset>(
        dir, data::MnistOptions{.train = true, .normalize = true});
    auto test_set = std::make_shared<data::MnistDataset>(
        dir, data::MnistOptions{.train = false, .normalize = true});
    data::DataLoader train_loader(
        train_set, {.batch_size = 128, .shuffle = true, .seed = 0, .num_workers = 1});
    data::DataLoader test_loader(test_set, {.batch_size = 1000});

    auto model = std::make_shared<MLP>();
    std::printf("%s", model->summary().c_str());
    optim::Adam opt(model->parameters(), {.lr = 1e-3});

    for (int epoch = 0; epoch < epochs; ++epoch) {
      auto t0 = std::chrono::steady_clock::now();
      model->train();
      double total = 0;
      int64_t batches = 0;
      for (data::Batch& batch : train_loader.epoch(epoch)) {
        opt.zero_grad();
        Tensor loss = cross_entropy(model->forward(batch.input), batch.target);
        loss.backward();
        opt.step();
        total += loss.item<double>();
        ++batches;
      }
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("epoch %d  train loss %.4f  (%.2f s)\n", epoch + 1, total / batches, s);
    }

    // evaluate on the test split
    NoGradGuard no_grad;
    model->eval();
    train::ClassificationMetrics metrics(10, /*inputs_are_logits=*/true);
    for (data::Batch& batch : test_loader.epoch(0)) {
      metrics.update(model->forward(batch.input), batch.target);
    }
    train::ClassificationReport report = metrics.compute();
    std::printf("%s", report.to_table(data::fashion_mnist_classes()).c_str());
    std::printf("test accuracy %.4f\n", report.accuracy);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
