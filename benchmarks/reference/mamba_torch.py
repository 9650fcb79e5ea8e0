#!/usr/bin/env python3
"""mambagrad's Mamba character LM, written in plain PyTorch (1.13, CPU), to time it beside ours.

The same model as models/mamba/ (the official Mamba, mamba_simple.py + mixer_seq_simple.py, slow
path): vocab 65, d_model 128, n_layer 4, d_state 16, d_conv 4, expand 2, dt_rank 8, tied
embeddings, RMSNorm eps 1e-5, the official init; 474,880 parameters. The same training as
apps/common/trainer.cpp: batch 32, seq_len 128, AdamW (lr 2e-3, betas (0.9, 0.95), eps 1e-8,
weight decay 0.1 except biases / norms / A_log / D), warmup 100 steps then cosine to 2e-4,
gradient clip 1.0, TinyShakespeare with a sorted-unique-bytes tokenizer, 90/10 split, random
windows; val loss = mean over 20 fixed, evenly spaced val batches (fixed_batch).

The selective scan is state-spaces/mamba's selective_scan_ref (a Python loop over L of
(B, D, N) tensor ops), its per-step slices taken with unbind (see selective_scan_ref below;
`--scan sequential-literal` indexes as the original does, ~30x slower in backward);
`--scan chunked|streamed` uses the loop-free closed forms of selective_scan_torch.py (beside
this file) instead.

  /usr/bin/python3 benchmarks/reference/mamba_torch.py --measure-steps 10             # train tokens/s
  /usr/bin/python3 benchmarks/reference/mamba_torch.py --measure-steps 10 --scan chunked
  /usr/bin/python3 benchmarks/reference/mamba_torch.py --measure-steps 0 --generate 200   # gen tokens/s
  /usr/bin/python3 benchmarks/reference/mamba_torch.py --time-budget 600             # val loss after 10 min
  /usr/bin/python3 benchmarks/reference/mamba_torch.py --check                       # self-tests
"""
import argparse
import functools
import math
import os
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- the selective scan
def selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, literal=False):
    """state-spaces/mamba's selective_scan_ref (variable B, C of shape (b, n, l); delta_softplus).
    u, delta, z: (b, d, l); A: (d, n); D, delta_bias: (d). Returns y (b, d, l).
    The one change: the per-step slices come from unbind(2), not from indexing [:, :, i]. The
    math and the ops per step are the same, but autograd's backward of an index materializes a
    zero tensor of the full (b, d, l, n) input for each of the l steps and adds them up: O(l^2)
    memory traffic, ~30x the forward's time here. `literal=True` keeps the indexing (--scan
    sequential-literal), to show that cost."""
    delta = F.softplus(delta + delta_bias[..., None])
    batch, dim, dstate = u.shape[0], A.shape[0], A.shape[1]
    x = A.new_zeros((batch, dim, dstate))
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    if not literal:  # one backward node (a stack) per tensor instead of l full-size scatters
        deltaA, deltaB_u, C = deltaA.unbind(2), deltaB_u.unbind(2), C.unbind(2)
    ys = []
    for i in range(u.shape[2]):
        if literal:
            x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
            ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
        else:
            x = deltaA[i] * x + deltaB_u[i]
            ys.append(torch.einsum("bdn,bn->bd", x, C[i]))
    y = torch.stack(ys, dim=2)  # (b, d, l)
    out = y + u * D[:, None]
    return out * F.silu(z)


def closed_form_scan(name, chunk):
    """The loop-free formulation `name` of selective_scan_torch.py. Its closed form computes
    e^{+-(S - S_mid)} with S = cumsum(delta A) over a chunk, which overflows float32 once
    |S| over a chunk exceeds ~170; training can grow delta, so the chunk is halved (down to 4)
    whenever the data would come near that, rather than silently producing inf/nan."""
    sys.path.insert(0, HERE)
    import selective_scan_torch as sst  # noqa: E402 (the other helper's reference file)
    fn = {"chunked": sst.scan_chunked, "streamed": sst.scan_streamed}[name]

    def scan(u, delta, A, B, C, D, z, delta_bias):
        T = chunk
        with torch.no_grad():
            dt = F.softplus(delta + delta_bias[:, None])
            amax = A.abs().max()
            while T > 4 and (dt.view(dt.shape[0], dt.shape[1], -1, T).sum(-1).max() * amax).item() > 120:
                T //= 2
        y, _ = fn(u, delta, A, B, C, D, z, delta_bias, chunk=T)
        return y
    return scan


# ---------------------------------------------------------------- the model
class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaMixer(nn.Module):
    def __init__(self, d_model, d_state=16, d_conv=4, expand=2, dt_rank=None, dt_min=0.001, dt_max=0.1,
                 dt_init_floor=1e-4, scan=selective_scan_ref):
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = expand * d_model
        self.dt_rank = dt_rank or math.ceil(d_model / 16)
        self.scan = scan
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        # The official init (mamba_simple.py): dt_proj.weight ~ U(+-dt_rank^-1/2); dt_proj.bias =
        # softplus^-1(dt), dt log-uniform in [dt_min, dt_max] and floored; A = -(1..N); D = 1.
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))  # (d_inner, N)
        self.D = nn.Parameter(torch.ones(self.d_inner))

    def forward(self, hidden):  # (b, l, d_model) -> (b, l, d_model); the official slow path
        L = hidden.shape[1]
        xz = self.in_proj(hidden).transpose(1, 2)              # (b, 2 d_inner, l)
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :L])                    # causal depthwise conv
        x_dbl = self.x_proj(x.transpose(1, 2))                 # (b, l, dt_rank + 2N)
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # (b, d_inner, l); bias in the scan
        A = -torch.exp(self.A_log)
        y = self.scan(x, delta, A, B.transpose(1, 2), C.transpose(1, 2), self.D, z, self.dt_proj.bias)
        return self.out_proj(y.transpose(1, 2))

    def step(self, hidden, conv_state, ssm_state):
        """One token, the official Mamba.step: hidden (b, d_model); conv_state (b, d_inner, d_conv)
        and ssm_state (b, d_inner, N) are updated in place."""
        x, z = self.in_proj(hidden).chunk(2, dim=-1)           # (b, d_inner) each
        conv_state.copy_(torch.roll(conv_state, shifts=-1, dims=-1))
        conv_state[:, :, -1] = x
        x = F.silu(torch.sum(conv_state * self.conv1d.weight[:, 0], dim=-1) + self.conv1d.bias)
        dt, B, C = torch.split(self.x_proj(x), [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(F.linear(dt, self.dt_proj.weight) + self.dt_proj.bias)  # (b, d_inner)
        A = -torch.exp(self.A_log)
        dA = torch.exp(torch.einsum("bd,dn->bdn", dt, A))
        dB = torch.einsum("bd,bn->bdn", dt, B)
        ssm_state.copy_(ssm_state * dA + x[..., None] * dB)
        y = torch.einsum("bdn,bn->bd", ssm_state, C) + self.D * x
        return self.out_proj(y * F.silu(z))


class Block(nn.Module):  # pre-norm residual: x + mixer(norm(x)); mixer registered first, as officially
    def __init__(self, d_model, eps, **kw):
        super().__init__()
        self.mixer = MambaMixer(d_model, **kw)
        self.norm = RMSNorm(d_model, eps)

    def forward(self, x):
        return x + self.mixer(self.norm(x))


class MambaLM(nn.Module):
    def __init__(self, vocab_size=65, d_model=128, n_layer=4, norm_eps=1e-5, **kw):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.embeddings = nn.Embedding(vocab_size, d_model)
        self.backbone.layers = nn.ModuleList([Block(d_model, norm_eps, **kw) for _ in range(n_layer)])
        self.backbone.norm_f = RMSNorm(d_model, norm_eps)
        # The official _init_weights: embedding ~ N(0, 0.02); out_proj kaiming-uniform(a = sqrt 5)
        # / sqrt(n_layer); Linear biases other than dt_proj's are zero (there are none here).
        nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
        for layer in self.backbone.layers:
            nn.init.kaiming_uniform_(layer.mixer.out_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                layer.mixer.out_proj.weight /= math.sqrt(n_layer)

    def forward(self, tokens):  # (b, l) -> logits (b, l, vocab); the head is tied to the embedding
        h = self.backbone.embeddings(tokens)
        for layer in self.backbone.layers:
            h = layer(h)
        return F.linear(self.backbone.norm_f(h), self.backbone.embeddings.weight)

    def new_state(self, batch):
        m = self.backbone.layers[0].mixer
        return [(torch.zeros(batch, m.d_inner, m.d_conv), torch.zeros(batch, m.d_inner, m.d_state))
                for _ in self.backbone.layers]

    def step(self, token, state):  # token (b,) -> logits (b, vocab); state updated in place
        h = self.backbone.embeddings(token)
        for layer, (conv_state, ssm_state) in zip(self.backbone.layers, state):
            h = h + layer.mixer.step(layer.norm(h), conv_state, ssm_state)
        return F.linear(self.backbone.norm_f(h), self.backbone.embeddings.weight)


# ---------------------------------------------------------------- data (apps/common/text_dataset.cpp)
def load_data(path):
    raw = open(path, "rb").read()
    vocab = sorted(set(raw))                                 # sorted distinct bytes
    lut = torch.full((256,), -1, dtype=torch.long)
    lut[torch.tensor(vocab)] = torch.arange(len(vocab))
    ids = lut[torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()]
    n = len(ids) * 9 // 10                                   # first 90% train, last 10% val
    return vocab, ids[:n], ids[n:]


def gather(ids, starts, seq_len):
    idx = starts[:, None] + torch.arange(seq_len + 1)
    w = ids[idx]
    return w[:, :-1], w[:, 1:]


def random_batch(ids, batch, seq_len, gen):
    return gather(ids, torch.randint(0, len(ids) - seq_len, (batch,), generator=gen), seq_len)


def fixed_batch(ids, batch, seq_len, index, count):
    span = len(ids) - seq_len
    starts = torch.tensor([(index * batch + b) * span // (count * batch) for b in range(batch)])
    return gather(ids, starts, seq_len)


# ---------------------------------------------------------------- training (apps/common/trainer.cpp)
def lr_at(step, a):  # nn/lr_schedule.cpp: linear warmup, then cosine to min_lr at a.steps
    warmup = min(a.warmup, a.steps)
    if step < warmup:
        return a.lr * (step + 1) / warmup
    if step >= a.steps:
        return a.min_lr
    progress = (step - warmup) / (a.steps - warmup)
    return a.min_lr + (a.lr - a.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model, a):
    def no_decay(name, p):  # nn/optim/param_groups.cpp
        return p.dim() < 2 or name.split(".")[-1] in ("bias", "A_log", "D") or "norm" in name
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not no_decay(n, p)], "weight_decay": a.weight_decay},
              {"params": [p for n, p in named if no_decay(n, p)], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)


def train_step(model, opt, step, train_ids, a, gen):
    for g in opt.param_groups:
        g["lr"] = lr_at(step, a)
    x, y = random_batch(train_ids, a.batch, a.seq_len, gen)
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    value = loss.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
    opt.step()
    return value


@torch.no_grad()
def evaluate(model, val_ids, a, count=20):
    total = 0.0
    for i in range(count):
        x, y = fixed_batch(val_ids, a.batch, a.seq_len, i, count)
        logits = model(x)
        total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
    return total / count


@torch.no_grad()
def generate(model, vocab, n, temperature, gen):
    state = model.new_state(1)
    token = torch.tensor([vocab.index(ord("\n"))])  # the prompt "\n", as `mambagrad generate`'s default
    logits = model.step(token, state)
    out = []
    start = time.perf_counter()
    for _ in range(n):
        probs = F.softmax(logits[0] / temperature, dim=-1)
        token = torch.multinomial(probs, 1, generator=gen)
        out.append(token.item())
        logits = model.step(token, state)
    return bytes(vocab[t] for t in out).decode("latin-1"), time.perf_counter() - start


# ---------------------------------------------------------------- self-checks
def check(model, a):
    torch.manual_seed(1)
    tokens = torch.randint(0, 65, (2, 64))
    with torch.no_grad():
        full = model(tokens)
        state = model.new_state(2)
        steps = torch.stack([model.step(tokens[:, t], state) for t in range(64)], dim=1)
    err = (full - steps).abs().max().item()
    print(f"check: recurrent step vs full forward at L = 64: max |diff| = {err:.2e}")
    assert err < 1e-4
    args = [torch.randn(2, 256, 128), 0.5 * torch.randn(2, 256, 128), -torch.arange(1., 17).repeat(256, 1),
            torch.randn(2, 16, 128), torch.randn(2, 16, 128), torch.ones(256), torch.randn(2, 256, 128),
            model.backbone.layers[0].mixer.dt_proj.bias.detach()]
    ref = selective_scan_ref(*args)
    scans = {"sequential-literal": functools.partial(selective_scan_ref, literal=True),
             "chunked": closed_form_scan("chunked", a.chunk), "streamed": closed_form_scan("streamed", a.chunk)}
    for name, scan in scans.items():
        err = ((scan(*args) - ref).abs().max() / ref.abs().max()).item()
        print(f"check: {name} scan vs selective_scan_ref: max relative error {err:.2e}")
        assert err < 1e-4


def add_training_args(p):
    """The options of `mambagrad train` that shape a step: data, threads, seed, schedule, AdamW, clip
    (shared with gpt_torch.py)."""
    p.add_argument("--data", default="/work/shared/data/tinyshakespeare.txt")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000, help="the LR schedule's length (as `mambagrad train`)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(p)
    p.add_argument("--scan", choices=["sequential", "sequential-literal", "chunked", "streamed"], default="sequential")
    p.add_argument("--chunk", type=int, default=32, help="chunk length T of --scan chunked/streamed")
    p.add_argument("--measure-steps", type=int, default=20, help="time this many steps (after 3 warm-up)")
    p.add_argument("--time-budget", type=float, default=0, help="> 0: train this many seconds, print val loss")
    p.add_argument("--generate", type=int, default=0, help="> 0: time generating this many tokens at batch 1")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--check", action="store_true", help="check step == forward and the scans agree, then exit")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    vocab, train_ids, val_ids = load_data(a.data)
    scan = {"sequential": selective_scan_ref, "sequential-literal": functools.partial(selective_scan_ref, literal=True)
            }.get(a.scan) or closed_form_scan(a.scan, a.chunk)
    model = MambaLM(vocab_size=len(vocab), d_model=128, n_layer=4, d_state=16, d_conv=4, expand=2, scan=scan)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
          f"{n_params:,} parameters; scan {a.scan}{f' T={a.chunk}' if a.scan in ('chunked', 'streamed') else ''}; "
          f"{len(train_ids):,} train / {len(val_ids):,} val tokens")
    if a.check:
        return check(model, a)
    opt = make_optimizer(model, a)
    gen = torch.Generator().manual_seed(a.seed ^ 0x5DEECE66D)
    tokens_per_step = a.batch * a.seq_len
    step = 0

    if a.measure_steps > 0:
        for _ in range(3):  # warm-up
            train_step(model, opt, step, train_ids, a, gen)
            step += 1
        start = time.perf_counter()
        for _ in range(a.measure_steps):
            loss = train_step(model, opt, step, train_ids, a, gen)
            step += 1
        elapsed = time.perf_counter() - start
        print(f"train: {a.measure_steps} steps of {a.batch} x {a.seq_len} in {elapsed:.2f} s = "
              f"{a.measure_steps * tokens_per_step / elapsed:,.0f} tokens/s ({elapsed / a.measure_steps * 1e3:.0f} "
              f"ms/step; loss {loss:.4f} at step {step})", flush=True)

    if a.time_budget > 0:
        start = time.perf_counter()
        first = step
        while step < a.steps:
            loss = train_step(model, opt, step, train_ids, a, gen)
            step += 1
            elapsed = time.perf_counter() - start
            if step % 10 == 0:
                print(f"step {step} | loss {loss:.4f} | lr {lr_at(step - 1, a):.2e} | "
                      f"{(step - first) * tokens_per_step / elapsed:,.0f} tok/s | {elapsed:.0f} s", flush=True)
            if elapsed >= a.time_budget:
                break
        elapsed = time.perf_counter() - start
        val = evaluate(model, val_ids, a)
        print(f"time budget: {step - first} steps in {elapsed:.1f} s "
              f"({(step - first) * tokens_per_step / elapsed:,.0f} tokens/s); val loss {val:.4f} at step {step}")

    if a.generate > 0:
        model.eval()
        text, elapsed = generate(model, vocab, a.generate, a.temperature, gen)
        print(f"generate: {a.generate} tokens at batch 1 (recurrent step) in {elapsed:.3f} s = "
              f"{a.generate / elapsed:,.0f} tokens/s")
        print("sample: " + repr(text[:200]))


if __name__ == "__main__":
    main()
