#!/usr/bin/env python3
"""PyTorch CPU reference timings of the selective scan (S6), to compare mambagrad's kernel with.

Formulations (all float32, Mamba's options: delta_bias + softplus, D skip, z gate; B, C (B, N, L)):
  sequential   selective_scan_ref of state-spaces/mamba: precompute exp(delta A) and delta B u
               as (B, D, L, N) tensors, then a Python loop over L of (B, D, N) tensor ops, with
               one einsum per step for y. The baseline the issue names. Its backward is O(L^2):
               the gradient of each slice deltaA[:, :, i] is a fresh (B, D, L, N) zero tensor.
  lean_loop    the same loop with one fused op per step (addcmul) over slices taken once by
               unbind (an O(L) backward), the states stacked once and contracted with C at the end.
  chunked      no loop over L: within chunks of T steps the recurrence has the closed form
                 h_t = e^{S_t} (h_in + sum_{s<=t} e^{-S_s} dBu_s),  S_t = sum_{s<=t} delta_s A
               (cumsum, exp, cumsum over the chunk, exponents taken relative to mid-chunk); a
               short loop over the L / T chunks carries the state between chunks. Exact in real
               arithmetic; in float32 it needs |S| < ~170 over a chunk so that no e^{+-(S - S_mid)}
               overflows (the script prints the largest |S| of the data and checks y is finite).
  streamed     the chunked closed form, computed chunk after chunk (a loop over L / T) so that
               each chunk's (B, D, T, N) temporaries stay in cache, the state passed along.
State updates per call: B * D * L * N; the tables report G state updates / s = that / time.
Forward is timed under torch.no_grad(); forward+backward computes the gradients of every input.

  /usr/bin/python3 benchmarks/reference/selective_scan_torch.py            # all shapes
  /usr/bin/python3 benchmarks/reference/selective_scan_torch.py --quick    # small shapes only
"""
import argparse
import math
import platform
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = [(2, 256, 16, 128), (2, 256, 16, 512), (2, 256, 16, 2048), (1, 1536, 16, 2048)]  # (B, D, N, L)


# ---- the formulations. u, delta, z: (B, D, L); A: (D, N); Bm, Cm: (B, N, L); D_skip, delta_bias: (D)
def gate(y, u, D_skip, z):
    return (y + u * D_skip[:, None]) * F.silu(z)


def scan_sequential(u, delta, A, Bm, Cm, D_skip, z, delta_bias):
    """selective_scan_ref (state-spaces/mamba), for variable B/C of shape (B, N, L)."""
    delta = F.softplus(delta + delta_bias[:, None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, Bm, u)
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, Cm[:, :, i]))
    return gate(torch.stack(ys, dim=2), u, D_skip, z), x


def scan_lean_loop(u, delta, A, Bm, Cm, D_skip, z, delta_bias):
    delta = F.softplus(delta + delta_bias[:, None])
    dA = torch.exp(delta[..., None] * A[:, None, :])                         # (B, D, L, N)
    dBu = (delta * u)[..., None] * Bm.transpose(1, 2)[:, None]               # (B, D, L, N)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    states = []
    # unbind once: autograd then stacks the L slice gradients once, where indexing dA[:, :, t]
    # in the loop (as selective_scan_ref does) writes each into a fresh full-size zero tensor: O(L^2)
    for dA_t, dBu_t in zip(dA.unbind(2), dBu.unbind(2)):
        h = torch.addcmul(dBu_t, dA_t, h)                                    # h = dA h + dBu
        states.append(h)
    hs = torch.stack(states, dim=2)                                          # (B, D, L, N)
    y = torch.einsum("bdln,bln->bdl", hs, Cm.transpose(1, 2))
    return gate(y, u, D_skip, z), h


def chunk_closed_form(logA, dBu, dim):
    """The zero-initial-state scan of chunks along `dim` (length T), in closed form:
        h_t = sum_{s<=t} e^{S_t - S_s} dBu_s = e^{S_t - m} cumsum_s(e^{m - S_s} dBu_s),  S = cumsum(logA)
    with m = S at mid-chunk, which halves the exponent range (|S_t - m| <= |S_T| / 2 must stay below
    ~88 in float32). Returns the states and e^{S_t - m}, e^{m}: what carrying an initial state needs,
    since h_t += e^{S_t - m} e^{m} h_in."""
    S = torch.cumsum(logA, dim=dim)
    m = S.narrow(dim, S.shape[dim] // 2, 1)
    E, Einv = torch.exp(S - m), torch.exp(m - S)
    return E * torch.cumsum(dBu * Einv, dim=dim), E, torch.exp(m)


def scan_chunked(u, delta, A, Bm, Cm, D_skip, z, delta_bias, chunk=64):
    delta = F.softplus(delta + delta_bias[:, None])
    batch, dim, L = u.shape
    dstate, T = A.shape[1], chunk
    nc = L // T
    assert nc * T == L, "L must be a multiple of the chunk length"
    logA = (delta[..., None] * A[:, None, :]).view(batch, dim, nc, T, dstate)
    dBu = ((delta * u)[..., None] * Bm.transpose(1, 2)[:, None]).view(batch, dim, nc, T, dstate)
    local, E, em = chunk_closed_form(logA, dBu, dim=3)                      # (B, D, nc, T, N)
    # the state entering each chunk: a short recurrence over chunks, h <- e^{S_T} h + local_T
    decay, last = (E[:, :, :, -1:] * em).squeeze(3), local[:, :, :, -1]     # (B, D, nc, N)
    h = u.new_zeros(batch, dim, dstate)
    h_in = []
    for c in range(nc):
        h_in.append(h)
        h = torch.addcmul(last[:, :, c], decay[:, :, c], h)
    hs = torch.addcmul(local, E, em * torch.stack(h_in, dim=2)[:, :, :, None])  # (B, D, nc, T, N)
    y = torch.einsum("bdln,bln->bdl", hs.view(batch, dim, L, dstate), Cm.transpose(1, 2))
    return gate(y, u, D_skip, z), h


def scan_streamed(u, delta, A, Bm, Cm, D_skip, z, delta_bias, chunk=64):
    delta = F.softplus(delta + delta_bias[:, None])
    L, T = u.shape[2], chunk
    Bt, Ct = Bm.transpose(1, 2), Cm.transpose(1, 2)                          # (B, L, N)
    h, ys = None, []
    for t0 in range(0, L, T):
        dt, uc = delta[:, :, t0:t0 + T], u[:, :, t0:t0 + T]
        logA = dt[..., None] * A[:, None, :]                                 # (B, D, T, N)
        dBu = (dt * uc)[..., None] * Bt[:, None, t0:t0 + T]
        hs, E, em = chunk_closed_form(logA, dBu, dim=2)
        if h is not None:
            hs = torch.addcmul(hs, E, (em * h[:, :, None]))
        ys.append((hs * Ct[:, None, t0:t0 + T]).sum(-1))                     # y_t = <C_t, h_t>
        h = hs[:, :, -1]
    return gate(torch.cat(ys, dim=2), u, D_skip, z), h


FORMULATIONS = {"sequential": scan_sequential, "lean_loop": scan_lean_loop,
                "chunked": scan_chunked, "streamed": scan_streamed}


# ---- inputs like a Mamba layer's (S4D-real init of A; dt in [0.001, 0.1] through delta_bias)
def make_inputs(batch, dim, dstate, L, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    randn = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    dt = torch.exp(torch.rand(dim, generator=g, dtype=torch.float64) * (math.log(0.1) - math.log(0.001))
                   + math.log(0.001))
    inputs = dict(u=randn(batch, dim, L), delta=0.5 * randn(batch, dim, L),
                  A=-torch.arange(1, dstate + 1, dtype=torch.float64).repeat(dim, 1),
                  Bm=randn(batch, dstate, L), Cm=randn(batch, dstate, L), D_skip=torch.ones(dim, dtype=torch.float64),
                  z=randn(batch, dim, L), delta_bias=dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
    return {k: v.to(dtype) for k, v in inputs.items()}


def run(fn, inputs, grad_y, backward):
    if not backward:
        with torch.no_grad():
            return fn(**inputs)
    leaves = {k: v.detach().requires_grad_(True) for k, v in inputs.items()}
    y, _ = fn(**leaves)
    y.backward(grad_y)
    return y, {k: v.grad for k, v in leaves.items()}


# ---- verification: every formulation against the sequential reference, values and gradients
def max_rel_error(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def verify(shape, dtype, chunks):
    inputs = make_inputs(*shape, dtype=dtype, seed=1)
    grad_y = torch.randn(shape[0], shape[1], shape[3], generator=torch.Generator().manual_seed(2), dtype=dtype)
    ref_y, ref_grads = run(scan_sequential, inputs, grad_y, True)
    delta = F.softplus(inputs["delta"] + inputs["delta_bias"][:, None]).double()
    worst = {T: (delta.view(shape[0], shape[1], -1, T).sum(-1).amax(dim=(0, 2))[:, None]
                 * inputs["A"].double().abs()).max().item() for T in chunks}
    print(f"verify {dtype} (B, D, N, L) = {shape}; largest |S| over a chunk: "
          + ", ".join(f"T={T}: {s:.0f}" for T, s in worst.items()))
    print("  max relative error vs sequential, y / worst gradient:")
    for name, fn in FORMULATIONS.items():
        if name == "sequential":
            continue
        for T in (chunks if name in ("chunked", "streamed") else [None]):
            f = fn if T is None else (lambda T=T, fn=fn, **kw: fn(**kw, chunk=T))
            y, grads = run(f, inputs, grad_y, True)
            gerr = max(max_rel_error(grads[k], ref_grads[k]) for k in grads)
            label = name if T is None else f"{name} T={T}"
            print(f"  {label:16s} {max_rel_error(y, ref_y):.2e} / {gerr:.2e}")


# ---- timing
def time_call(fn, reps, min_seconds):
    t0 = time.perf_counter()
    fn()  # warm-up
    first = time.perf_counter() - t0
    if first > 10 * min_seconds:  # minutes-long calls (the O(L^2) backward): one is enough
        return first
    times = []
    start = time.perf_counter()
    while len(times) < reps or (time.perf_counter() - start < min_seconds and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="only the two smallest shapes")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions at least (median reported)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="keep repeating up to this long")
    parser.add_argument("--chunk", type=int, default=64, help="T of the chunked formulation")
    parser.add_argument("--stream-chunk", type=int, default=64, help="T of the streamed formulation")
    parser.add_argument("--sequential-backward-max", type=int, default=2 * 256 * 16 * 2048,
                        help="skip the sequential loop's O(L^2) backward when B*D*L*N exceeds this")
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    if not args.no_verify:
        verify((2, 8, 4, 64), torch.float64, [8, 32])
        verify((2, 256, 16, 512), torch.float32, [16, 32, 64])
    shapes = SHAPES[:2] if args.quick else SHAPES
    print("\n| B | D | N | L | formulation | fwd ms | fwd G/s | fwd+bwd ms | fwd+bwd G/s |")
    print("|---|---|---|---|---|---:|---:|---:|---:|")
    for shape in shapes:
        batch, dim, dstate, L = shape
        updates = batch * dim * L * dstate
        inputs = make_inputs(*shape)
        grad_y = torch.randn(batch, dim, L, generator=torch.Generator().manual_seed(3))
        for name, fn in FORMULATIONS.items():
            if name == "chunked":
                fn = lambda fn=fn, **kw: fn(**kw, chunk=args.chunk)
                name = f"chunked T={args.chunk}"
            elif name == "streamed":
                fn = lambda fn=fn, **kw: fn(**kw, chunk=args.stream_chunk)
                name = f"streamed T={args.stream_chunk}"
            y, _ = run(fn, inputs, grad_y, False)
            assert torch.isfinite(y).all(), f"{name}: non-finite output at {shape}"
            fwd = time_call(lambda: run(fn, inputs, grad_y, False), args.reps, args.min_seconds)
            if name == "sequential" and updates > args.sequential_backward_max:
                both_cells = "skipped | "
            else:
                both = time_call(lambda: run(fn, inputs, grad_y, True), args.reps, args.min_seconds)
                both_cells = f"{both * 1e3:.1f} | {updates / both / 1e9:.4f}"
            print(f"| {batch} | {dim} | {dstate} | {L} | {name} | {fwd * 1e3:.1f} | {updates / fwd / 1e9:.3f} "
                  f"| {both_cells} |", flush=True)


if __name__ == "__main__":
    main()
