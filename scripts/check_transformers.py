#!/usr/bin/env python3
"""Loads an arpo-train model directory with Hugging Face transformers and compares it with ours.

Usage: check_transformers.py MODEL_DIR EXPECTED_JSON
EXPECTED_JSON holds what arpo-train computed, any of:
  "tokens", "logits": {"tokens": [[...]], "logits": [[[...]]]}: AutoModelForCausalLM's logits for
      the token rows must be within 1e-4 of these (needs torch);
  "encodings": [{"text": ..., "ids": [...]}]: AutoTokenizer must encode each text to exactly the
      ids (special tokens included, nothing added) and decode the ids back to the text;
  "chats": [{"messages": [...], "add_generation_prompt": bool, "template_arguments": {...},
      "text": ..., "ids": [...]}]: apply_chat_template must render exactly the text, and give
      exactly the ids when it tokenizes (needs jinja2).
Prints a line per check (the first disagreements in full); exits 1 when any fails.
"""
import json
import sys


def check_logits(directory, expected):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=torch.float32)
    model.eval()
    tokens = torch.tensor(expected["tokens"], dtype=torch.long)
    with torch.no_grad():
        logits = model(tokens).logits
    reference = torch.tensor(expected["logits"], dtype=torch.float32)
    difference = (logits - reference).abs().max().item()
    print(f"max_abs_logit_difference {difference:.3e}")
    return difference <= 1e-4


def check_encodings(tokenizer, encodings):
    failures = []
    for case in encodings:
        ids = tokenizer(case["text"], add_special_tokens=False)["input_ids"]
        decoded = tokenizer.decode(case["ids"], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if ids != case["ids"]:
            failures.append(f"encode {case['text']!r}: transformers {ids}, ours {case['ids']}")
        elif decoded != case["text"]:
            failures.append(f"decode {case['ids']}: transformers {decoded!r}, ours {case['text']!r}")
    print(f"encodings: {len(encodings) - len(failures)} of {len(encodings)} agree")
    for failure in failures[:5]:
        print(f"  {failure}")
    return not failures


def check_chats(tokenizer, chats):
    failures = []
    for index, chat in enumerate(chats):
        options = dict(add_generation_prompt=chat["add_generation_prompt"], **chat.get("template_arguments", {}))
        text = tokenizer.apply_chat_template(chat["messages"], tokenize=False, **options)
        encoded = tokenizer.apply_chat_template(chat["messages"], tokenize=True, **options)
        # A BatchEncoding (transformers 5) or a list of ids (4.x).
        ids = list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)
        if text != chat["text"]:
            failures.append(f"chat {index} renders {text!r}, ours {chat['text']!r}")
        elif ids != chat["ids"]:
            failures.append(f"chat {index} tokenizes to {ids}, ours {chat['ids']}")
    print(f"chats: {len(chats) - len(failures)} of {len(chats)} agree")
    for failure in failures:
        print(f"  {failure}")
    return not failures


def main() -> int:
    directory, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path, encoding="utf-8") as handle:
        expected = json.load(handle)
    passed = True
    if "logits" in expected:
        passed &= check_logits(directory, expected)
    if "encodings" in expected or "chats" in expected:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(directory)
        print(f"tokenizer: {type(tokenizer).__name__}, {len(tokenizer)} tokens")
        if "encodings" in expected:
            passed &= check_encodings(tokenizer, expected["encodings"])
        if "chats" in expected:
            passed &= check_chats(tokenizer, expected["chats"])
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
