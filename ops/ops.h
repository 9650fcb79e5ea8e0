#pragma once
// Every public op.
#include "ops/binary.h"
#include "ops/conv1d.h"
#include "ops/discretize.h"
#include "ops/dropout.h"
#include "ops/indexing.h"
#include "ops/matmul.h"
#include "ops/reduce.h"
#include "ops/rms_norm.h"
#include "ops/selective_scan.h"
#include "ops/softmax.h"
#include "ops/unary.h"
#include "ops/view.h"
