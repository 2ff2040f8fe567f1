// The op harness and fixture loading.
#include "op_harness.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

namespace moxing::testing {
namespace {

using nlohmann::json;

DType parse_dtype(const std::string& s) {
  static const std::map<std::string, DType> names = {{"f32", DType::f32},      {"f64", DType::f64},
                                                     {"i64", DType::i64},      {"i32", DType::i32},
                                                     {"bool", DType::boolean}, {"u8", DType::u8}};
  auto it = names.find(s);
  if (it == names.end()) fail("fixture: unknown dtype '{}'", s);
  return it->second;
}

// Fixture values are stored as f64; float inputs load as `float_dtype`.
Tensor from_json(const json& j, DType float_dtype) {
  Shape shape = j.at("shape").get<Shape>();
  DType dt = parse_dtype(j.at("dtype").get<std::string>());
  std::vector<double> vals;
  for (const auto& v : j.at("data")) {
    if (v.is_string()) {
      std::string s = v.get<std::string>();
      vals.push_back(s == "nan" ? NAN : s == "inf" ? INFINITY : -INFINITY);
    } else if (v.is_boolean()) {
      vals.push_back(v.get<bool>() ? 1.0 : 0.0);
    } else {
      vals.push_back(v.get<double>());
    }
  }
  // from_vector infers 1-d from an empty shape; a 0-d fixture needs the reshape
  Tensor t64 = shape.empty() ? from_vector(vals, Shape{1}).reshape({}) : from_vector(vals, shape);
  if (is_floating(dt)) return t64.to(float_dtype);
  if (dt == DType::i64) {
    std::vector<int64_t> iv;
    for (const auto& v : j.at("data")) iv.push_back(v.get<int64_t>());
    return shape.empty() ? from_vector(iv, Shape{1}).reshape({}) : from_vector(iv, shape);
  }
  return t64.to(dt);
}

struct Fixture {
  json root;
};

const json& load_family(const std::string& family) {
  static std::map<std::string, std::unique_ptr<json>> cache;
  auto it = cache.find(family);
  if (it != cache.end()) return *it->second;
  std::string path = std::string(MOXING_FIXTURE_DIR) + "/" + family + ".json";
  std::ifstream in(path);
  if (!in)
    fail("fixture file {} is missing; regenerate it with tests/fixtures/{}.py", path, family);
  auto j = std::make_unique<json>(json::parse(in));
  const json& ref = *j;
  cache[family] = std::move(j);
  return ref;
}

const json& load_case(const std::string& family, const std::string& name) {
  const json& root = load_family(family);
  if (!root.at("cases").contains(name)) {
    fail("fixture {}.json has no case '{}'; add it to tests/fixtures/{}.py and rerun it", family,
         name, family);
  }
  return root.at("cases").at(name);
}

std::vector<Tensor> load_inputs(const json& c, DType float_dtype, bool requires_grad) {
  std::vector<Tensor> in;
  for (const auto& j : c.at("inputs")) {
    Tensor t = from_json(j, float_dtype);
    bool diff = j.value("requires_grad", true);
    if (requires_grad && diff && is_floating(t.dtype())) t.requires_grad_();
    in.push_back(t);
  }
  return in;
}

void run_values(const std::string& family, const OpCase& oc) {
  const json& c = load_case(family, oc.name);
  std::vector<Tensor> in = load_inputs(c, DType::f32, oc.gradcheck);
  Tensor out = oc.fn(in);
  Tensor expected = from_json(c.at("output"), DType::f32);
  ASSERT_EQ(out.shape(), expected.shape()) << "output shape";
  ASSERT_EQ(out.dtype(), expected.dtype()) << "output dtype";
  std::string msg = compare(out, expected, oc.atol, oc.rtol);
  EXPECT_EQ(msg, "") << "output of " << oc.name;
  if (!oc.gradcheck) return;
  Tensor gout = from_json(c.at("grad_output"), DType::f32);
  out.backward(gout);
  const json& grads = c.at("grads");
  for (size_t i = 0; i < in.size(); ++i) {
    if (grads[i].is_null() || !in[i].requires_grad()) continue;
    Tensor ge = from_json(grads[i], DType::f32);
    Tensor g = in[i].grad();
    ASSERT_TRUE(g.defined()) << "no gradient for input " << i;
    ASSERT_EQ(g.shape(), ge.shape()) << "gradient shape of input " << i;
    std::string gm = compare(g, ge, oc.atol * 10, oc.rtol * 10);
    EXPECT_EQ(gm, "") << "gradient of input " << i << " of " << oc.name;
  }
}

void run_gradcheck(const std::string& family, const OpCase& oc, bool noncontig) {
  const json& c = load_case(family, oc.name);
  std::vector<Tensor> in = load_inputs(c, DType::f64, false);
  std::vector<Tensor> reference_out;
  if (noncontig) {
    Tensor contiguous_out = oc.fn(in);
    for (auto& t : in) t = noncontiguous_copy(t);
    for (const auto& t : in) {
      if (t.dim() > 0 && t.numel() > 1) {
        EXPECT_FALSE(t.is_contiguous());
      }
    }
    Tensor out = oc.fn(in);
    EXPECT_EQ(compare(out, contiguous_out, 1e-12, 1e-12), "") << "non-contiguous output differs";
  }
  if (!oc.gradcheck) return;
  size_t k = 0;
  for (const auto& j : c.at("inputs")) {
    if (j.value("requires_grad", true) && is_floating(in[k].dtype())) in[k].requires_grad_();
    ++k;
  }
  autograd::GradcheckOptions opt;
  opt.atol = oc.gradcheck_atol;
  auto r = autograd::gradcheck(oc.fn, in, opt);
  EXPECT_TRUE(r.ok) << oc.name << ": " << r.message;
}

// The row on meta inputs, under DeviceGuard(kMeta) so that tensors the row's function creates
// are meta too: shapes and dtypes must equal the cpu run's, and backward must give each input
// a meta gradient of its shape.
void run_meta(const std::string& family, const OpCase& oc) {
  const json& c = load_case(family, oc.name);
  std::vector<Tensor> cpu_in = load_inputs(c, DType::f32, oc.gradcheck);
  Tensor ref = oc.fn(cpu_in);
  std::vector<Tensor> in;
  for (const Tensor& t : cpu_in) {
    Tensor m = t.detach().to(kMeta);
    ASSERT_TRUE(m.is_meta());
    ASSERT_EQ(m.shape(), t.shape());
    if (t.requires_grad()) m.requires_grad_();
    in.push_back(m);
  }
  DeviceGuard guard(kMeta);
  if (oc.needs_values) {
    std::string err = error_of([&] { oc.fn(in); });
    EXPECT_TRUE(contains(err, "meta tensor") && contains(err, "shapes only"))
        << oc.name << " on meta: expected the meta error, got '" << err << "'";
    return;
  }
  Tensor out = oc.fn(in);
  EXPECT_TRUE(out.is_meta()) << "output on " << device_name(out.device());
  EXPECT_EQ(out.shape(), ref.shape()) << "output shape";
  EXPECT_EQ(out.dtype(), ref.dtype()) << "output dtype";
  if (!oc.gradcheck || !out.requires_grad()) return;
  out.backward(empty(out.shape(), out.options()));
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].requires_grad()) continue;
    Tensor g = in[i].grad();
    ASSERT_TRUE(g.defined()) << "no gradient for input " << i;
    EXPECT_TRUE(g.is_meta()) << "gradient of input " << i;
    EXPECT_EQ(g.shape(), in[i].shape()) << "gradient shape of input " << i;
    EXPECT_EQ(g.dtype(), in[i].dtype()) << "gradient dtype of input " << i;
  }
}

class OpTest : public ::testing::Test {
 public:
  explicit OpTest(std::function<void()> body) : body_(std::move(body)) {}
  void TestBody() override { body_(); }

 private:
  std::function<void()> body_;
};

}  // namespace

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

Tensor tensor_from_json_text(const std::string& text) {
  return from_json(json::parse(text), DType::f32);
}

Tensor noncontiguous_copy(const Tensor& t) {
  Shape big = t.shape();
  big.push_back(2);
  Tensor buf = zeros(big, t.dtype());
  Tensor v = select(buf, -1, 0);
  copy_into(v, t);
  return v;
}

std::string compare(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  if (actual.shape() != expected.shape()) {
    return fmt::format("shape {} vs expected {}", shape_str(actual.shape()),
                       shape_str(expected.shape()));
  }
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  double worst = 0;
  std::string msg;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(e[i]) && std::isnan(a[i])) continue;
    if (std::isinf(e[i]) && a[i] == e[i]) continue;
    double err = std::abs(a[i] - e[i]);
    double tol = atol + rtol * std::abs(e[i]);
    if (!(err <= tol) && (err - tol > worst || msg.empty())) {
      worst = err - tol;
      msg = fmt::format("element {}: got {:.9g}, expected {:.9g} (|diff| {:.3g} > tol {:.3g})", i,
                        a[i], e[i], err, tol);
    }
  }
  return msg;
}

bool register_op_cases(const std::string& family, const std::vector<OpCase>& cases) {
  for (const OpCase& oc : cases) {
    std::string suite = "ops_" + family;
    auto reg = [&](const std::string& kind, std::function<void()> body) {
      ::testing::RegisterTest(suite.c_str(), (oc.name + "_" + kind).c_str(), nullptr, nullptr,
                              __FILE__, __LINE__,
                              [body]() -> ::testing::Test* { return new OpTest(body); });
    };
    reg("values", [family, oc] { run_values(family, oc); });
    reg("gradcheck", [family, oc] { run_gradcheck(family, oc, false); });
    reg("noncontig", [family, oc] { run_gradcheck(family, oc, true); });
    reg("meta", [family, oc] { run_meta(family, oc); });
  }
  return true;
}

}  // namespace moxing::testing
