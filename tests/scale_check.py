"""Scale check (a script, not part of the pytest run): the real GLUE SST-2 train.tsv (67,349
sentences) when ../shared/data/SST-2/train.tsv is present, else a generated 67,000-sentence TSV of
about its size, through preprocess -> fast-model export -> ONNX Runtime inference (the default
fused, length-bucketed path) -> postprocess.

Prints wall time, sentences/s and peak RSS of every stage (each stage is its own process, measured
with wait4), the tokenizer's own rate, and checks the fast tokenizer's ids against the independent
reference tokenizer on a sample. About 2 minutes on 2 cores.

    .venv/bin/python tests/scale_check.py [--data_file TSV | --generated [--count 67000]]
                                          [--model_dir ../shared/models/tinybert-sst2-demo]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

DEFAULT_CHECKPOINT = REPO.parent / "shared" / "models" / "tinybert-sst2-demo"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "SST-2" / "train.tsv"  # the real GLUE SST-2 train set
INPUTS = ("input_ids", "segment_ids", "input_mask")


def plain_words(vocab_path: Path) -> list[str]:
    """Whole-word entries of the vocabulary (no ##pieces, [special] or [unusedN] tokens)."""
    words = [line.rstrip("\n") for line in vocab_path.open(encoding="utf-8")]
    return [w for w in words if w and not w.startswith(("##", "[")) and (w.isalpha() or w in ",.!?'-")]


def write_tsv(path: Path, words: list[str], count: int, seed: int = 0) -> None:
    """SST-2-like rows: mostly short phrases, some long sentences, a few past 64 tokens."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write("sentence\tlabel\n")
        for _ in range(count):
            length = rng.choice((rng.randint(1, 8), rng.randint(5, 30), rng.randint(20, 70)))
            out.write(f"{' '.join(rng.choices(words, k=length))} \t{rng.randint(0, 1)}\n")


def run_stage(name: str, args: list[str], count: int, cwd: Path) -> dict:
    """Run `python -m tinybert ARGS` as its own process; wall time and that process's peak RSS."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tinybert", *map(str, args)], cwd=cwd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)  # rusage of exactly this child
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"[ERROR] stage {name} failed with exit code {proc.returncode}")
    return {"stage": name, "wall_s": wall, "per_s": count / wall, "peak_rss_mib": usage.ru_maxrss / 1024}


def tokenizer_rate(sentences: list[str], vocab: Path) -> float:
    from tinybert.data.features import encode_sentences

    start = time.perf_counter()
    encode_sentences(sentences, str(vocab), 64)
    return len(sentences) / (time.perf_counter() - start)


def ids_match_reference(sentences: list[str], vocab: Path, sample: int = 2000) -> bool:
    from reference import reference_features

    from tinybert.data.features import encode_sentences

    picked = random.Random(1).sample(sentences, min(sample, len(sentences)))
    fast = encode_sentences(picked, str(vocab), 64)
    ids, _, mask = reference_features(picked, str(vocab), 64)
    return bool((fast.input_ids == ids).all() and (fast.input_mask == mask).all())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_file", type=Path, default=DEFAULT_DATA if DEFAULT_DATA.is_file() else None,
                   help="labelled SST-2 TSV to run (default: ../shared/data/SST-2/train.tsv when present)")
    p.add_argument("--generated", action="store_true", help="run a generated TSV of --count sentences instead")
    p.add_argument("--count", type=int, default=67_000, help="sentences of the generated TSV")
    p.add_argument("--model_dir", type=Path, default=DEFAULT_CHECKPOINT)
    p.add_argument("--batch_size", type=int, default=64)
    a = p.parse_args()
    vocab = a.model_dir / "vocab.txt"
    if not vocab.is_file():
        sys.exit(f"[ERROR] {vocab}: expected the checkpoint's vocabulary (pass --model_dir)")
    with tempfile.TemporaryDirectory(prefix="tinybert-scale-") as tmp:
        root = Path(tmp)
        if a.data_file is not None and not a.generated:
            tsv, what = a.data_file.resolve(), f"of {a.data_file.name} (real data)"
        else:
            tsv, what = root / "big.tsv", "of a generated TSV"
            write_tsv(tsv, plain_words(vocab), a.count)
        from tinybert.data.dataset import read_sst2_tsv

        sentences = read_sst2_tsv(str(tsv)).sentences
        count = len(sentences)
        rate = tokenizer_rate(sentences, vocab)
        same = ids_match_reference(sentences, vocab)
        bs = a.batch_size
        inputs = ",".join(f"bin/{name}" for name in INPUTS)
        stages = [
            run_stage("preprocess", ["preprocess", "--input_file", tsv, "--vocab_file", vocab,
                                     "--output_dir", "bin"], count, root),
            run_stage("export (fast models)", ["export-fast", "--model_dir", a.model_dir, "--output_dir", ".",
                                               "--features_dir", "bin"], count, root),
            run_stage(f"infer bs{bs} (onnxruntime fast)", ["infer", "--model", "TinyBERT_fast.onnx", "--input", inputs,
                                                           "--output", "result", "--batchsize", bs,
                                                           "--output_dirname", "scale"], count, root),
            run_stage("postprocess", ["postprocess", "scale", "--result_root", "result", "--bin_dir", "bin"],
                      count, root),
        ]
    print(f"\n[SCALE] {count} sentences {what}, {os.cpu_count()} CPU(s), checkpoint {a.model_dir.name}")
    print(f"[SCALE] tokenizer alone: {rate:,.0f} sentences/s; ids identical to the reference tokenizer "
          f"on a 2000-sentence sample: {same}")
    print(f"[SCALE] {'stage':<30} {'wall s':>8} {'sentences/s':>12} {'peak RSS MiB':>13}")
    for s in stages:
        per_s = "-" if s["stage"].startswith("export") else f"{s['per_s']:,.0f}"
        print(f"[SCALE] {s['stage']:<30} {s['wall_s']:>8.1f} {per_s:>12} {s['peak_rss_mib']:>13.0f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
