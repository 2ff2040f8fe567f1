// Everything a user of moxing needs, in one include.
#pragma once

#include "moxing/autograd/engine.h"
#include "moxing/autograd/gradcheck.h"
#include "moxing/autograd/node.h"
#include "moxing/core/parallel.h"
#include "moxing/core/rng.h"
#include "moxing/core/tensor.h"
#include "moxing/ops/elementwise.h"
#include "moxing/ops/indexing.h"
#include "moxing/ops/random.h"
#include "moxing/ops/reduction.h"
#include "moxing/ops/shape.h"
