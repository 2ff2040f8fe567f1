// The defaults of the encoder interfaces.
#include "moxing/models/encoder.h"

#include "moxing/ops/indexing.h"
#include "moxing/ops/shape.h"

namespace moxing::models {

Tensor MaskedLM::mlm_logits_at(const EncoderInputs& inputs, const Tensor& positions) {
  Tensor logits = mlm_logits(inputs);  // (B,T,V)
  return index_select(logits.reshape({logits.size(0) * logits.size(1), logits.size(2)}), 0,
                      positions);
}

}  // namespace moxing::models
