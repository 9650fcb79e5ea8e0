#pragma once
// Everything a user of mambagrad needs: #include <mambagrad.h>
#include "autograd/engine.h"
#include "autograd/function.h"
#include "autograd/grad_mode.h"
#include "autograd/gradcheck.h"
#include "nn/nn.h"
#include "ops/ops.h"
#include "tensor/factory.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
