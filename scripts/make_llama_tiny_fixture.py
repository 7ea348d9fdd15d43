#!/usr/bin/env python3
"""Regenerates the llama-tiny parity fixture that Tests/PolicyTests/FixtureTests.swift reads.

    python3 scripts/make_llama_tiny_fixture.py Tests/PolicyTests/Fixtures/llama-tiny

Needs torch, transformers and safetensors. Writes into the directory:

- config.json, model.safetensors: a LlamaForCausalLM with random weights as save_pretrained
  writes it (F32, tied embeddings, norm weights drawn around 1 so that a wrong norm shows).
  Vocabulary 272, hidden 64, MLP 160, 2 layers, 4 heads, theta 10000, eps 1e-5.
- batch.json: 3 rows of 12 tokens, right-padded with pad_token_id 258 to lengths 12, 9, 5, and
  the AdamW settings.
- expected.safetensors (F64, computed in float64 from the F32 weights): logits, entropies,
  logprobs_next, loss_mask, loss, grad.NAME for every parameter, and adamw_step1.NAME for the
  embedding, the final norm and layer 0 (AdamW is elementwise; layer 1's would only add size).

The README.md beside the fixture describes every array. The draws come from --seed, so the
numbers differ from the committed fixture's while the layout is the same.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

VOCABULARY = 272
PAD = 258
LENGTHS = [12, 9, 5]
ADAMW = {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.1}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    os.makedirs(arguments.directory, exist_ok=True)
    torch.manual_seed(arguments.seed)

    config = LlamaConfig(
        vocab_size=VOCABULARY, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, head_dim=16, max_position_embeddings=64,
        rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=256, eos_token_id=257,
        pad_token_id=PAD, attn_implementation="eager")
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(1 + 0.1 * torch.randn_like(parameter))
    model.save_pretrained(arguments.directory, safe_serialization=True)
    # Only the model files are part of the fixture.
    generation = os.path.join(arguments.directory, "generation_config.json")
    if os.path.exists(generation):
        os.remove(generation)

    # Byte tokens (below the special tokens 256...), right-padded.
    width = max(LENGTHS)
    tokens = torch.full((len(LENGTHS), width), PAD, dtype=torch.long)
    for row, length in enumerate(LENGTHS):
        tokens[row, :length] = torch.randint(0, 256, (length,))
    attention = (torch.arange(width)[None, :] < torch.tensor(LENGTHS)[:, None]).long()
    with open(os.path.join(arguments.directory, "batch.json"), "w") as file:
        json.dump({
            "tokens": tokens.tolist(), "lengths": LENGTHS, "pad_token_id": PAD,
            "adamw": dict(ADAMW, decay_applies_to="every parameter (torch.optim.AdamW default)"),
        }, file, indent=1)

    model = model.double()
    logits = model(input_ids=tokens, attention_mask=attention).logits  # (B, T, V)
    logProbabilities = torch.log_softmax(logits, dim=-1)
    entropies = -(logProbabilities.exp() * logProbabilities).sum(-1)  # (B, T)
    # Position t predicts token t + 1, which must lie inside the row.
    lossMask = (torch.arange(1, width)[None, :] < torch.tensor(LENGTHS)[:, None]).double()  # (B, T-1)
    logprobsNext = logProbabilities[:, :-1].gather(-1, tokens[:, 1:, None]).squeeze(-1) * lossMask
    loss = -logprobsNext.sum() / lossMask.sum()
    loss.backward()

    expected = {
        "logits": logits, "entropies": entropies, "logprobs_next": logprobsNext, "loss_mask": lossMask,
        "loss": loss.reshape(1),
    }
    for name, parameter in model.named_parameters():
        expected["grad." + name] = parameter.grad
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=ADAMW["lr"], betas=(ADAMW["beta1"], ADAMW["beta2"]), eps=ADAMW["eps"],
        weight_decay=ADAMW["weight_decay"])
    optimizer.step()
    for name, parameter in model.named_parameters():
        if not name.startswith("model.layers.") or name.startswith("model.layers.0."):
            expected["adamw_step1." + name] = parameter
    save_file({name: value.detach().to(torch.float64).contiguous() for name, value in expected.items()},
              os.path.join(arguments.directory, "expected.safetensors"))


if __name__ == "__main__":
    main()
