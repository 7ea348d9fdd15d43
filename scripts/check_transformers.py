#!/usr/bin/env python3
"""Loads an arpo-train checkpoint directory with Hugging Face transformers and compares logits.

Usage: check_transformers.py CHECKPOINT_DIR EXPECTED_JSON
EXPECTED_JSON holds {"tokens": [[...]], "logits": [[[...]]]} computed by arpo-train's policy.
Prints the max absolute logit difference; exits 1 when it exceeds 1e-4.
"""
import json
import sys

import torch
from transformers import AutoModelForCausalLM


def main() -> int:
    directory, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as handle:
        expected = json.load(handle)
    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32)
    model.eval()
    tokens = torch.tensor(expected["tokens"], dtype=torch.long)
    with torch.no_grad():
        logits = model(tokens).logits
    reference = torch.tensor(expected["logits"], dtype=torch.float32)
    difference = (logits - reference).abs().max().item()
    print(f"max_abs_logit_difference {difference:.3e}")
    return 0 if difference <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
