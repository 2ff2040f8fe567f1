// QuantizedLinear, QuantizedEmbedding and the surgery that swaps them in.
#include "moxing/nn/quantized.h"

#include <utility>
#include <vector>

#include "moxing/ops/elementwise.h"
#include "moxing/ops/quant.h"
#include "moxing/ops/shape.h"

namespace moxing::nn {

QuantizedLinear::QuantizedLinear(int64_t in, int64_t out, bool with_bias, DType type_)
    : in_features(in), out_features(out), type(type_) {
  MOXING_CHECK(is_quantized(type) || type == DType::i8,
               "QuantizedLinear: {} is not a quantized dtype", dtype_name(type));
  MOXING_CHECK(in >= 0 && out >= 0 && in % dtype_block_numel(type) == 0,
               "QuantizedLinear: {} stores rows in blocks of {}, and in_features {} does not "
               "divide into them",
               dtype_name(type), dtype_block_numel(type), in);
  weight = register_parameter("weight", zeros({out, in}, TensorOptions(type)), false);
  if (type == DType::i8) weight_scale = register_parameter("weight_scale", zeros({out}), false);
  if (with_bias) bias = register_parameter("bias", zeros({out}));
}

std::shared_ptr<QuantizedLinear> QuantizedLinear::from_linear(const Linear& linear, DType type) {
  std::shared_ptr<QuantizedLinear> q;
  {
    DeviceGuard shapes_only(kMeta);
    q = std::make_shared<QuantizedLinear>(linear.in_features, linear.out_features, false, type);
  }
  if (type == DType::i8) {
    Int8Rows rows = quantize_int8_rows(linear.weight.detach());
    q->weight = q->register_parameter("weight", rows.weight, false);
    q->weight_scale = q->register_parameter("weight_scale", rows.scale, false);
  } else {
    q->weight = q->register_parameter("weight", quantize(linear.weight.detach(), type), false);
  }
  if (linear.bias.defined()) q->bias = q->register_parameter("bias", linear.bias);
  return q;
}

Tensor QuantizedLinear::forward(const Tensor& x) {
  if (type == DType::i8) return int8_linear(x, weight, weight_scale, bias, f32_compute);
  return quantized_linear(x, weight, bias, f32_compute);
}

std::string QuantizedLinear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}, type={}", in_features, out_features,
                     bias.defined() ? "True" : "False", dtype_name(type));
}

QuantizedEmbedding::QuantizedEmbedding(int64_t num, int64_t dim, DType type_)
    : num_embeddings(num), embedding_dim(dim), type(type_) {
  MOXING_CHECK(is_quantized(type), "QuantizedEmbedding: {} is not a quantized dtype",
               dtype_name(type));
  MOXING_CHECK(num >= 0 && dim >= 0 && dim % dtype_block_numel(type) == 0,
               "QuantizedEmbedding: {} stores rows in blocks of {}, and embedding_dim {} does "
               "not divide into them",
               dtype_name(type), dtype_block_numel(type), dim);
  weight = register_parameter("weight", zeros({num, dim}, TensorOptions(type)), false);
}

std::shared_ptr<QuantizedEmbedding> QuantizedEmbedding::from_embedding(const Embedding& e,
                                                                       DType type) {
  std::shared_ptr<QuantizedEmbedding> q;
  {
    DeviceGuard shapes_only(kMeta);
    q = std::make_shared<QuantizedEmbedding>(e.num_embeddings, e.embedding_dim, type);
  }
  q->weight = q->register_parameter("weight", quantize(e.weight.detach(), type), false);
  return q;
}

Tensor QuantizedEmbedding::forward(const Tensor& ids) { return quantized_embedding(weight, ids); }

std::string QuantizedEmbedding::extra_repr() const {
  return fmt::format("{}, {}, type={}", num_embeddings, embedding_dim, dtype_name(type));
}

DType quantized_type_for(int64_t in, DType type, DType fallback) {
  if (in % dtype_block_numel(type) == 0) return type;
  if (in % dtype_block_numel(fallback) == 0) return fallback;
  return DType::f32;
}

QuantizeReport quantize_modules(Module& root, const QuantizeOptions& options) {
  MOXING_CHECK(
      (is_quantized(options.type) || options.type == DType::i8) && is_quantized(options.fallback),
      "quantize_modules: {} and {} must be quantized dtypes", dtype_name(options.type),
      dtype_name(options.fallback));
  QuantizeReport report;
  // embeddings first, so that a head tied to a table can take the quantized table
  std::vector<std::pair<Tensor, Tensor>> tables;  // (f32 table, its quantized tensor)
  root.replace_modules<Embedding>([&](const std::string& path,
                                      std::shared_ptr<Embedding> e) -> std::shared_ptr<Module> {
    if ((options.skip && options.skip(path)) || !options.embedding_type) {
      report[path] = e->weight.dtype();
      return nullptr;
    }
    const DType t = quantized_type_for(e->embedding_dim, *options.embedding_type, options.fallback);
    report[path] = t;
    if (!is_quantized(t)) return nullptr;
    auto q = QuantizedEmbedding::from_embedding(*e, t);
    tables.emplace_back(e->weight, q->weight);
    return q;
  });
  root.replace_modules<Linear>(
      [&](const std::string& path, std::shared_ptr<Linear> l) -> std::shared_ptr<Module> {
        if (options.skip && options.skip(path)) {
          report[path] = l->weight.dtype();
          return nullptr;
        }
        for (const auto& [table, quantized] : tables) {
          if (!table.shares_storage(l->weight) || table.shape() != l->weight.shape()) continue;
          std::shared_ptr<QuantizedLinear> q;
          {
            DeviceGuard shapes_only(kMeta);
            q = std::make_shared<QuantizedLinear>(l->in_features, l->out_features, false,
                                                  quantized.dtype());
          }
          q->weight = q->register_parameter("weight", quantized, false);
          if (l->bias.defined()) q->bias = q->register_parameter("bias", l->bias);
          report[path] = quantized.dtype();
          return q;
        }
        const DType t = quantized_type_for(l->in_features, options.type, options.fallback);
        report[path] = t;
        if (!is_quantized(t) && t != DType::i8) return nullptr;  // rows left in f32
        return QuantizedLinear::from_linear(*l, t);
      });
  return report;
}

int dequantize_modules(Module& root) {
  std::vector<std::pair<Tensor, Tensor>> tables;  // (quantized table, its f32 table)
  int n = root.replace_modules<QuantizedEmbedding>(
      [&](const std::string&, std::shared_ptr<QuantizedEmbedding> q) -> std::shared_ptr<Module> {
        std::shared_ptr<Embedding> e;
        {
          DeviceGuard shapes_only(kMeta);
          e = std::make_shared<Embedding>(q->num_embeddings, q->embedding_dim);
        }
        e->weight = e->register_parameter("weight", dequantize(q->weight));
        tables.emplace_back(q->weight, e->weight);
        return e;
      });
  n += root.replace_modules<QuantizedLinear>(
      [&](const std::string&, std::shared_ptr<QuantizedLinear> q) -> std::shared_ptr<Module> {
        std::shared_ptr<Linear> l;
        {
          DeviceGuard shapes_only(kMeta);
          l = std::make_shared<Linear>(q->in_features, q->out_features, false);
        }
        Tensor w;
        for (const auto& [quantized, table] : tables) {
          if (quantized.shares_storage(q->weight)) w = table;
        }
        if (!w.defined()) {
          w = q->type == DType::i8 ? mul(q->weight.to(DType::f32), q->weight_scale.unsqueeze(1))
                                   : dequantize(q->weight);
        }
        l->weight = l->register_parameter("weight", w);
        if (q->bias.defined()) l->bias = l->register_parameter("bias", q->bias);
        return l;
      });
  return n;
}

DType quantize_type_from_name(const std::string& name, const std::string& what) {
  if (name == "int8") return DType::i8;
  std::optional<DType> t = dtype_from_name(name);
  MOXING_CHECK(t && is_quantized(*t) && *t != DType::q6_k,
               "{} {}: moxing quantizes to q8_0, q4_0, q4_1, q4_k or int8", what, name);
  return *t;
}

void set_f32_compute(Module& root, bool on) {
  root.for_each_module<QuantizedLinear>(
      [on](const std::string&, QuantizedLinear& l) { l.f32_compute = on; });
}

}  // namespace moxing::nn
