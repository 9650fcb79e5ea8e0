#!/usr/bin/env python3
"""mambagrad's GPT (models/gpt/), written idiomatically in PyTorch (nanoGPT's model.py), to time
its training step beside ours on the same machine (benchmarks/models/gpt_train_bench.cpp).

The same model: vocab 65, n_positions 128, 3 layers, n_embd 112, 4 heads, pre-LayerNorm blocks,
GELU (tanh) MLP 4x, tied embeddings, learned positions, GPT-2 init (residual projections
0.02 / sqrt(2 n_layer)); 477,792 parameters. Attention is F.scaled_dot_product_attention(is_causal=
True) where the torch version has it (2.0+), else nanoGPT's own fallback: q k^T, masked_fill with
a causal mask buffer, softmax, @ v. The same step as apps/common/trainer.cpp (imported from
mamba_torch.py beside this file): AdamW (lr 2e-3, betas (0.9, 0.95), weight decay 0.1 except
biases and LayerNorms), warmup then cosine, gradient clip 1.0, batch 32 x 128 of TinyShakespeare.

  /usr/bin/python3 benchmarks/reference/gpt_torch.py --measure-steps 20          # train tokens/s
  /usr/bin/python3 benchmarks/reference/gpt_torch.py --profile 5                 # where the time goes
"""
import argparse
import math
import os
import platform
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mamba_torch import add_training_args, load_data, make_optimizer, train_step  # noqa: E402 (the same step)

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, n_positions):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        if not HAS_SDPA:
            self.register_buffer("bias", torch.tril(torch.ones(n_positions, n_positions))
                                 .view(1, 1, n_positions, n_positions), persistent=False)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Dh)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if HAS_SDPA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, n_positions):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, n_positions)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size=65, n_positions=128, n_embd=112, n_layer=3, n_head=4):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(n_positions, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head, n_positions) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd)))
        for name, p in self.named_parameters():  # GPT-2's init
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))
            elif name.endswith("weight") and ".ln_" not in name and "ln_f" not in name:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.size(1)))
        for block in t.h:
            x = block(x)
        return F.linear(t.ln_f(x), t.wte.weight)  # the head tied to wte


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(p)
    p.add_argument("--measure-steps", type=int, default=20, help="time this many steps (after 3 warm-up)")
    p.add_argument("--profile", type=int, default=0, help="> 0: profile this many steps, print the top ops")
    p.add_argument("--n-layer", type=int, default=3)
    p.add_argument("--n-embd", type=int, default=112)
    p.add_argument("--n-head", type=int, default=4)
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    vocab, train_ids, _ = load_data(a.data)
    model = GPT(len(vocab), a.seq_len, a.n_embd, a.n_layer, a.n_head)
    n_params = sum(q.numel() for q in model.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
          f"{n_params:,} parameters; attention: {'F.scaled_dot_product_attention' if HAS_SDPA else 'matmul + masked_fill + softmax + matmul'}")
    opt = make_optimizer(model, a)
    gen = torch.Generator().manual_seed(a.seed ^ 0x5DEECE66D)
    step = 0
    for _ in range(3):  # warm-up
        train_step(model, opt, step, train_ids, a, gen)
        step += 1
    if a.measure_steps > 0:
        start = time.perf_counter()
        for _ in range(a.measure_steps):
            loss = train_step(model, opt, step, train_ids, a, gen)
            step += 1
        elapsed = time.perf_counter() - start
        print(f"train: {a.measure_steps} steps of {a.batch} x {a.seq_len} in {elapsed:.2f} s = "
              f"{a.measure_steps * a.batch * a.seq_len / elapsed:,.0f} tokens/s "
              f"({elapsed / a.measure_steps * 1e3:.1f} ms/step; loss {loss:.4f} at step {step})", flush=True)
    if a.profile > 0:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(a.profile):
                train_step(model, opt, step, train_ids, a, gen)
                step += 1
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
