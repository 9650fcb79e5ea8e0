#pragma once
// The linear recurrence h_t = a_t h_{t-1} + b_t as a parallel scan.
//
// Write one step as the pair x_t = (a_t, b_t), the affine map h -> a_t h + b_t. Doing x_1 then x_2
// is again such a map,
//   (a1, b1) o (a2, b2) = (a1 a2, a2 b1 + b2),
// and o is associative (composition of maps), with identity (1, 0). So h_t, the b-part of
// x_0 o x_1 o ... o x_t (starting from h = 0), is a prefix "sum" under o, and any parallel prefix
// algorithm computes it. Blelloch's is work-efficient: O(L) operations in O(log L) rounds, each
// round a loop whose iterations are independent (one GPU thread each in a kernel).
#include <cstdint>

#include "ops/cpu/selective_scan.h"

namespace mg::cpu {

// In place: on return (a[t], b[t]) = x_0 o ... o x_t, the inclusive scan, for t < length.
// Any length; the work arrays are padded to a power of two with the identity.
void linear_recurrence_scan(double* a, double* b, int64_t length);

// The selective scan's forward (float64) computed with linear_recurrence_scan over L for every
// (b, d, n): the same y (B, D, L) and last_state (B, D, N) as the sequential scan.
void selective_scan_parallel_cpu(const ScanInputs<double>& in, double* y, double* last_state);

}  // namespace mg::cpu
