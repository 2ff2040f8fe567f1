// Everything in moxing::nn: Module, layers, containers, init, save/load.
#pragma once

#include "moxing/nn/attention.h"
#include "moxing/nn/batchnorm.h"
#include "moxing/nn/containers.h"
#include "moxing/nn/init.h"
#include "moxing/nn/layers.h"
#include "moxing/nn/module.h"
#include "moxing/nn/quantized.h"
#include "moxing/nn/recurrent.h"
#include "moxing/nn/serialize.h"
#include "moxing/nn/transformer.h"
