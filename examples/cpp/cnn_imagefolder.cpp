// The seed image-folder CNN, as the PyTorch script reads: ImageFolder("train") with
// Resize((S,S)) + ToTensor, Conv2d + ReLU + pooling + Linear, cross-entropy, Adam, accuracy
// on "test". Make the folders from Fashion-MNIST with scripts/export-imagefolder ROOT.
// Usage: example_cnn_imagefolder ROOT [epochs] [size]   (ROOT holds train/ and test/)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "moxing/moxing.h"

using namespace moxing;

// class CNN(nn.Module)
struct CNN : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::Linear> fc;
  CNN(int64_t in_channels, int64_t size, int64_t num_classes) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(in_channels, 16, 3, 1, 1));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(16, 32, 3, 1, 1));
    fc = register_module("fc",
                         std::make_shared<nn::Linear>(32 * (size / 4) * (size / 4), num_classes));
  }
  // x (B,C,S,S) -> logits (B,num_classes)
  Tensor forward(const Tensor& x) {
    Tensor h = max_pool2d(relu(conv1->forward(x)), {2, 2});
    h = max_pool2d(relu(conv2->forward(h)), {2, 2});
    return fc->forward(h.flatten(1));
  }
  std::string type_name() const override { return "CNN"; }
};

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: example_cnn_imagefolder ROOT [epochs] [size]\n");
    return 2;
  }
  std::string root = argv[1];
  int epochs = argc > 2 ? std::atoi(argv[2]) : 3;
  int64_t size = argc > 3 ? std::atoll(argv[3]) : 32;
  try {
    manual_seed(0);
    // transforms.Compose([Resize((S,S)), ToTensor()])
    data::Transform transform =
        data::Compose({data::Resize(size, size), data::ToTensor(), data::Normalize({0.5}, {0.5})});
    auto train_set = std::make_shared<data::ImageFolder>(root + "/train", transform, 1);
    auto test_set = std::make_shared<data::ImageFolder>(root + "/test", transform, 1);
    int64_t num_classes = static_cast<int64_t>(train_set->classes().size());
    data::DataLoader train_loader(train_set,
                                  {.batch_size = 64, .shuffle = true, .seed = 0, .num_workers = 2});
    data::DataLoader test_loader(test_set, {.batch_size = 256, .num_workers = 2});

    auto model = std::make_shared<CNN>(1, size, num_classes);
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

    NoGradGuard no_grad;
    model->eval();
    train::ClassificationMetrics metrics(num_classes, /*inputs_are_logits=*/true);
    for (data::Batch& batch : test_loader.epoch(0)) {
      metrics.update(model->forward(batch.input), batch.target);
    }
    train::ClassificationReport report = metrics.compute();
    std::printf("%s", report.to_table(train_set->classes()).c_str());
    std::printf("test accuracy %.4f\n", report.accuracy);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
