#!/usr/bin/env python3
"""PyTorch's figures for arpo-bench's "vs PyTorch" column: the same LLaMA decoder and workloads
in PyTorch, eager and under torch.compile, on this machine.

arpo-bench runs this script itself, with the Python named by --pytorch-python or
ARPO_BENCH_PYTHON, around each of its own train and decode figures (once before, once after),
and sets the medians beside them. Run by hand it prints the same JSON:

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch
    /tmp/torchenv/bin/python scripts/pytorch_bench.py --benchmark train --threads 2 \\
        --model '{"vocab_size": 272, "hidden_size": 256, "intermediate_size": 768,
                  "num_hidden_layers": 4, "num_attention_heads": 4, "max_position_embeddings": 256}'

Workloads, as arpo-bench's (Benchmarks/arpo-bench/ModelBenchmarks.swift):
- train: one optimizer step over batch × context random tokens: forward to logits,
  log-softmax, entropies, the log-probs of the next tokens, masked mean NLL, backward, AdamW.
- decode: batch sequences, a prompt each prefilled into a KV cache, then new tokens sampled one
  at a time at temperature 1, one batched step per token; only the sampled tokens count.
Timing, as arpo-bench's Timer.secondsPerCall: two warm-up calls, then `repetitions` rounds of
enough calls to last 0.2 s; one tokens/s figure per round. torch.compile rounds alternate with
eager ones after the compiled function's warm-up (which includes its compilation).

Prints one JSON object: torch version, threads, and per mode (eager, compile) the per-round
tokens/s, or the error that stopped the mode. ARPO_PYTORCH_COMPILE=0 in the environment (which
arpo-bench passes on) measures eager alone: compiling takes a minute or more of CPU per run.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F


class Config:
    def __init__(self, fields):
        self.vocab = fields.get("vocab_size", 272)
        self.hidden = fields.get("hidden_size", 128)
        self.intermediate = fields.get("intermediate_size", 384)
        self.layers = fields.get("num_hidden_layers", 2)
        self.heads = fields.get("num_attention_heads", 4)
        self.kv_heads = fields.get("num_key_value_heads", self.heads)
        self.positions = fields.get("max_position_embeddings", 320)
        self.theta = fields.get("rope_theta", 10000.0)
        self.eps = fields.get("rms_norm_eps", 1e-5)
        self.tied = fields.get("tie_word_embeddings", True)
        self.head_dim = self.hidden // self.heads


class RMSNorm(torch.nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.input_norm = RMSNorm(c.hidden, c.eps)
        self.q = torch.nn.Linear(c.hidden, c.heads * c.head_dim, bias=False)
        self.k = torch.nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=False)
        self.v = torch.nn.Linear(c.hidden, c.kv_heads * c.head_dim, bias=False)
        self.o = torch.nn.Linear(c.heads * c.head_dim, c.hidden, bias=False)
        self.post_norm = RMSNorm(c.hidden, c.eps)
        self.gate = torch.nn.Linear(c.hidden, c.intermediate, bias=False)
        self.up = torch.nn.Linear(c.hidden, c.intermediate, bias=False)
        self.down = torch.nn.Linear(c.intermediate, c.hidden, bias=False)

    def mlp(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))

    def forward(self, x, cos, sin, cache=None, position=None, mask=None):
        """x (B, T, C). Without a cache: causal attention over x. With one ((K, V), each
        (B, KVH, capacity, D)): writes x's keys and values at `position` (T,), then attends over
        the whole cache under `mask` (1, 1, T, capacity)."""
        c = self.c
        b, t, _ = x.shape
        h = self.input_norm(x)
        q = self.q(h).view(b, t, c.heads, c.head_dim).transpose(1, 2)
        k = self.k(h).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v(h).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is None:
            keys, values = k, v
        else:
            keys, values = cache
            keys.index_copy_(2, position, k)
            values.index_copy_(2, position, v)
        if c.kv_heads != c.heads:
            keys = keys.repeat_interleave(c.heads // c.kv_heads, dim=1)
            values = values.repeat_interleave(c.heads // c.kv_heads, dim=1)
        if cache is None:
            attended = F.scaled_dot_product_attention(q, keys, values, is_causal=True)
        else:
            attended = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        x = x + self.o(attended.transpose(1, 2).reshape(b, t, c.hidden))
        return x + self.mlp(self.post_norm(x))


class Llama(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embedding = torch.nn.Embedding(c.vocab, c.hidden)
        torch.nn.init.normal_(self.embedding.weight, std=0.02)
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c.layers))
        self.norm = RMSNorm(c.hidden, c.eps)
        self.head = None if c.tied else torch.nn.Linear(c.hidden, c.vocab, bias=False)
        inverse = 1.0 / (c.theta ** (torch.arange(0, c.head_dim, 2, dtype=torch.float32) / c.head_dim))
        angles = torch.outer(torch.arange(c.positions, dtype=torch.float32), inverse)
        angles = torch.cat((angles, angles), dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def logits(self, x):
        x = self.norm(x)
        return x @ self.embedding.weight.t() if self.head is None else self.head(x)

    def forward(self, tokens):
        """Training forward: tokens (B, T) → logits (B, T, V)."""
        t = tokens.shape[1]
        x = self.embedding(tokens)
        cos, sin = self.cos[:t], self.sin[:t]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.logits(x)

    def step(self, tokens, positions, caches, mask):
        """KV-cache forward: tokens (B, T) at `positions` (T,) → logits of the last (B, V)."""
        x = self.embedding(tokens)
        cos, sin = self.cos[positions], self.sin[positions]
        for block, cache in zip(self.blocks, caches):
            x = block(x, cos, sin, cache, positions, mask)
        return self.logits(x[:, -1])


def rounds(body, repetitions, tokens, minimum_seconds=0.2, warm_up=2):
    """Timer.secondsPerCall's protocol: warm-up calls, then rounds of enough calls to last
    `minimum_seconds`; tokens/s per round."""
    for _ in range(warm_up):
        body()
    start = time.perf_counter()
    body()
    single = max(time.perf_counter() - start, 1e-7)
    calls = max(1, math.ceil(minimum_seconds / single))
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(calls):
            body()
        samples.append(tokens * calls / (time.perf_counter() - start))
    return samples


def token_loss(model, tokens, mask, count):
    """Masked mean NLL of the next tokens, with the entropies arpo-train's tokenStatistics also
    computes (this loss does not use them)."""
    log_probabilities = model(tokens).log_softmax(-1)
    entropies = -(log_probabilities.exp() * log_probabilities).sum(-1)
    picked = log_probabilities[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1) * mask
    return -picked.sum() / count, entropies.detach()


def make_train(c, batch, compiled):
    torch.manual_seed(0)
    model = Llama(c)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, foreach=True)
    generator = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, c.vocab, (batch, c.positions), generator=generator)
    mask = torch.ones(batch, c.positions - 1)
    count = float(mask.sum())
    # Compiled: the forward and loss, and through AOTAutograd their backward; AdamW stays eager.
    loss_of = torch.compile(token_loss) if compiled else token_loss

    def body():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = loss_of(model, tokens, mask, count)
        loss.backward()
        optimizer.step()

    return body, batch * c.positions


def make_decode(c, batch, prompt, new_tokens, compiled):
    torch.manual_seed(0)
    model = Llama(c).eval()
    capacity = prompt + new_tokens
    generator = torch.Generator().manual_seed(11)
    prompts = torch.randint(0, c.vocab, (batch, prompt), generator=generator)
    # Static shapes (a full-capacity cache and a mask), so one compiled graph serves every step.
    causal = torch.full((prompt, capacity), float("-inf")).triu(1)
    prefill_mask = causal[None, None]
    step = torch.compile(model.step) if compiled else model.step

    def body():
        with torch.no_grad():
            caches = [
                (torch.zeros(batch, c.kv_heads, capacity, c.head_dim), torch.zeros(batch, c.kv_heads, capacity, c.head_dim))
                for _ in range(c.layers)
            ]
            logits = model.step(prompts, torch.arange(prompt), caches, prefill_mask)
            mask = torch.full((1, 1, 1, capacity), float("-inf"))
            mask[..., :prompt] = 0
            for index in range(new_tokens):
                sampled = torch.multinomial(logits.softmax(-1), 1)
                if index + 1 < new_tokens:
                    position = prompt + index
                    mask[..., position] = 0
                    logits = step(sampled, torch.tensor([position]), caches, mask)

    return body, batch * new_tokens


def measure(make, repetitions):
    """Per-round tokens/s of each mode, eager and compiled alternating round by round."""
    modes = {}
    for mode in ("eager", "compile"):
        try:
            body, tokens = make(mode == "compile")
            rounds(body, 1, tokens)  # warm-up and, compiled, compilation
            modes[mode] = (body, tokens)
        except Exception as error:  # noqa: BLE001 — any failure of torch.compile leaves eager
            modes[mode] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    samples = {mode: [] for mode, value in modes.items() if not isinstance(value, str)}
    for index in range(repetitions):
        order = list(samples) if index % 2 == 0 else list(reversed(list(samples)))
        for mode in order:
            body, tokens = modes[mode]
            samples[mode] += rounds(body, 1, tokens, warm_up=0)
    return {mode: ({"tokens_per_s": samples[mode]} if mode in samples else {"error": modes[mode]}) for mode in modes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", choices=["train", "decode"], required=True)
    parser.add_argument("--model", required=True, help="the config's LlamaConfig fields, as JSON")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true", help="eager only (also ARPO_PYTORCH_COMPILE=0)")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    c = Config(json.loads(arguments.model))
    if arguments.benchmark == "train":
        make = lambda compiled: make_train(c, arguments.batch, compiled)  # noqa: E731
    else:
        make = lambda compiled: make_decode(c, arguments.batch, arguments.prompt_tokens, arguments.new_tokens, compiled)  # noqa: E731
    if arguments.no_compile or os.environ.get("ARPO_PYTORCH_COMPILE") == "0":
        body, tokens = make(False)
        results = {"eager": {"tokens_per_s": rounds(body, arguments.repetitions, tokens)}}
    else:
        results = measure(make, arguments.repetitions)
    print(json.dumps({"torch_version": torch.__version__, "threads": torch.get_num_threads(), "benchmark": arguments.benchmark, "modes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
