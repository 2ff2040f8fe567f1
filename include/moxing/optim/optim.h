// The optim layer in one include: optimizers, gradient clipping and lr schedulers
// (torch.optim, torch.nn.utils.clip_grad_*, torch.optim.lr_scheduler).
#pragma once

#include "moxing/optim/adagrad.h"
#include "moxing/optim/adam.h"
#include "moxing/optim/clip.h"
#include "moxing/optim/optimizer.h"
#include "moxing/optim/rmsprop.h"
#include "moxing/optim/scheduler.h"
#include "moxing/optim/sgd.h"
