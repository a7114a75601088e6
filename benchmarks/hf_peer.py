"""The peer users pick for fine-tuning: Hugging Face `transformers` (PyTorch), on the split reviewflow trained on.

Runs in its own environment (`make bench-hf-env`: torch + transformers; never in the project's .venv, never
in tests). Reads the split as JSON lines (`{"text": ..., "label": 0|1}`, written by `real_bench.py
--sections pretrained`), fine-tunes `AutoModelForSequenceClassification` from a local checkpoint directory
with the schedule `fit --model pretrained` uses (AdamW, weight decay 0.01, linear warm-up over 10% of the
steps then linear decay to 0, gradient clipping at 1.0, batch 32, head truncation at --max-len), for a fixed
number of steps, and prints one JSON line: accuracy, ROC AUC, seconds and examples/s of training.

    .venv-hf/bin/python benchmarks/hf_peer.py --checkpoint DIR --splits DIR [--steps 300] [--max-len 128]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

WEIGHT_DECAY = 0.01
CLIPNORM = 1.0


def read_split(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    return [row["text"] for row in rows], np.array([row["label"] for row in rows])


def batches(texts, labels, batch_size: int, rng: np.random.Generator | None):
    """Batches of (texts, labels): shuffled every pass when `rng` is given, in order otherwise."""
    while True:
        order = rng.permutation(len(texts)) if rng is not None else np.arange(len(texts))
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            yield [texts[i] for i in chosen], labels[chosen]
        if rng is None:
            return


def p_positive(model, tokenizer, texts, max_len: int, batch_size: int = 64) -> np.ndarray:
    model.eval()
    scores = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_len,
                               padding=True, return_tensors="pt")
            scores.append(torch.softmax(model(**inputs).logits, -1)[:, 1].numpy())
    model.train()
    return np.concatenate(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="Hugging Face checkpoint directory.")
    parser.add_argument("--splits", type=Path, required=True, help="train/validation/test .jsonl directory.")
    parser.add_argument("--steps", type=int, default=300, help="Optimizer steps (the warm-up and decay span).")
    parser.add_argument("--eval-every", type=int, default=100, help="Validation accuracy every this many steps.")
    parser.add_argument("--validation-examples", type=int, default=640)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--warmup-share", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(args.checkpoint, num_labels=2)
    train_texts, train_labels = read_split(args.splits / "train.jsonl")
    val_texts, val_labels = read_split(args.splits / "validation.jsonl")
    val_texts, val_labels = val_texts[:args.validation_examples], val_labels[:args.validation_examples]
    test_texts, test_labels = read_split(args.splits / "test.jsonl")

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=WEIGHT_DECAY)
    schedule = get_linear_schedule_with_warmup(optimizer, round(args.warmup_share * args.steps), args.steps)
    stream = batches(train_texts, train_labels, args.batch_size, np.random.default_rng(args.seed))
    model.train()
    curve, train_seconds = [], 0.0
    for step in range(1, args.steps + 1):
        texts, labels = next(stream)
        started = time.perf_counter()
        inputs = tokenizer(texts, truncation=True, max_length=args.max_len, padding=True, return_tensors="pt")
        loss = model(**inputs, labels=torch.tensor(labels)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIPNORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        train_seconds += time.perf_counter() - started  # validation passes are not training time
        if step % args.eval_every == 0 or step == args.steps:
            accuracy = accuracy_score(val_labels, p_positive(model, tokenizer, val_texts, args.max_len) > 0.5)
            curve.append((step, round(float(accuracy), 4)))
    scores = p_positive(model, tokenizer, test_texts, args.max_len)
    predicted = scores > 0.5
    print(json.dumps({
        "model": f"transformers {args.checkpoint.name}", "accuracy": accuracy_score(test_labels, predicted),
        "f1": f1_score(test_labels, predicted), "roc_auc": roc_auc_score(test_labels, scores),
        "train_s": round(train_seconds, 1), "examples_per_s": round(args.steps * args.batch_size / train_seconds, 1),
        "max_len": args.max_len, "steps": args.steps, "val_accuracy_by_step": curve,
        "torch_threads": torch.get_num_threads(), "seed": args.seed}))


if __name__ == "__main__":
    main()
