// Writes Fashion-MNIST as an ImageFolder tree of PNG files: OUT/train/<class>/<i>.png and
// OUT/test/<class>/<i>.png, readable by moxing::data::ImageFolder and torchvision alike.
// Usage: example_export_imagefolder OUT [--limit N per split] [--data DIR]
#include <cstdlib>
#include <iostream>
#include <string>

#include "moxing/data/data.h"

using namespace moxing::data;

int main(int argc, char** argv) {
  std::string out, data_dir = kFashionMnistDir;
  int64_t limit = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--limit" && i + 1 < argc) {
      limit = std::atoll(argv[++i]);
    } else if (a == "--data" && i + 1 < argc) {
      data_dir = argv[++i];
    } else if (out.empty() && !a.empty() && a[0] != '-') {
      out = a;
    } else {
      out.clear();
      break;
    }
  }
  if (out.empty()) {
    std::cerr << "usage: " << argv[0] << " OUT [--limit N per split] [--data DIR]\n";
    return 2;
  }
  try {
    for (bool train : {true, false}) {
      MnistDataset ds(data_dir, train);
      std::string dir = out + (train ? "/train" : "/test");
      int64_t n = export_imagefolder(ds, dir, fashion_mnist_classes(), limit);
      std::cerr << "wrote " << n << " images to " << dir << "\n";
    }
  } catch (const moxing::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
