#!/usr/bin/env python3
"""Writes the worked example's task files and demonstrations (examples/units), deterministically.

Tasks ask for a length conversion (answered by the units server's convert_length) or the weekday
of a date (day_of_week). tasks.jsonl uses this project's shape, eval.jsonl verl's shape
(chat-message prompt, reward_model.ground_truth, data_source), and demonstrations.jsonl holds an
OpenAI chat trajectory for every training task. Run from the repository root:
    python3 examples/units/generate.py
"""
import datetime
import json
import random
from pathlib import Path

METRES = {"m": 1, "km": 1000, "cm": 0.01, "mi": 1609.344, "ft": 0.3048, "in": 0.0254}
NAMES = {"m": "metres", "km": "kilometres", "cm": "centimetres", "mi": "miles", "ft": "feet", "in": "inches"}
HERE = Path(__file__).resolve().parent


def conversion(rng):
    source, target = rng.sample(sorted(METRES), 2)
    value = rng.randint(1, 200)
    answer = "%.3f" % (value * METRES[source] / METRES[target])
    question = rng.choice(["How many {t} is {v} {s}?", "Convert {v} {s} to {t}.", "What is {v} {s} in {t}?"]).format(
        v=value, s=NAMES[source], t=NAMES[target])
    return question, answer, "convert", ("convert_length", {"value": value, "from": source, "to": target})


def weekday(rng):
    date = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 30000))
    text = date.isoformat()
    question = rng.choice(["What day of the week was {d}?", "Which weekday is {d}?"]).format(d=text)
    return question, date.strftime("%A"), "weekday", ("day_of_week", {"date": text})


def main():
    rng = random.Random(29)
    tasks = [(conversion if rng.random() < 0.5 else weekday)(rng) for _ in range(240)]
    train, held_out = tasks[:200], tasks[200:]
    with open(HERE / "tasks.jsonl", "w") as out:
        for index, (question, answer, family, _) in enumerate(train):
            out.write(json.dumps({"id": "t%d" % index, "prompt": question, "answer": answer, "family": family}) + "\n")
    with open(HERE / "eval.jsonl", "w") as out:
        for question, answer, family, _ in held_out:
            out.write(json.dumps({"prompt": [{"role": "user", "content": question}],
                                  "reward_model": {"ground_truth": answer}, "data_source": family}) + "\n")
    with open(HERE / "demonstrations.jsonl", "w") as out:
        for index, (question, answer, _, (tool, arguments)) in enumerate(train):
            call_id = "call_%d" % index
            out.write(json.dumps({"messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": tool, "arguments": json.dumps(arguments)}}]},
                {"role": "tool", "tool_call_id": call_id, "content": answer},
                {"role": "assistant", "content": answer},
            ]}) + "\n")


if __name__ == "__main__":
    main()
