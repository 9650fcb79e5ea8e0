#pragma once
// Row gather and scatter-add on contiguous buffers: the kernels of index_select and embedding.
// A tensor is seen as (outer, rows, inner): `rows` is the indexed dimension, `inner` the
// contiguous block (one row) that moves as a whole.
#include <cstdint>

namespace mg {

// Position of the first index outside [0, rows), or -1 when all are valid.
int64_t first_index_out_of_range(const int64_t* index, int64_t n, int64_t rows);

// out: (outer, n, inner), x: (outer, rows, inner), index: (n,) with values in [0, rows).
//   out[o, i, :] = x[o, index[i], :]
// Copies bytes (element_size each), so it serves every dtype; one memcpy per row.
void index_select_forward_cpu(void* out, const void* x, const int64_t* index, int64_t outer, int64_t rows,
                              int64_t n, int64_t inner, int64_t element_size);

// dx: (outer, rows, inner), zero-filled by the caller; dout: (outer, n, inner).
//   dx[o, index[i], :] += dout[o, i, :]
// Indices are bucketed by destination row first, so each row of dx is written by one thread,
// adding its contributions in index order: no races, and the same bits for any thread count.
template <class T>
void index_select_backward_cpu(T* dx, const T* dout, const int64_t* index, int64_t outer, int64_t rows, int64_t n,
                               int64_t inner);

}  // namespace mg
