"""The model card's steps run through their scripts in one working directory, shared by the pipeline test files:
preprocess once, pth2onnx.sh once per batch size, ais_inference.sh + postprocess_data.sh once per (bs, ORT_MODEL),
and the original TinyBERT computation's logits to hold them against (computed once for the run)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from conftest import run_script
from reference import reference_features, reference_logits

from tinybert.data.dataset import read_sst2_tsv

EXPORT_LINE = re.compile(r"(TinyBERT_\w+)\.onnx vs PyTorch .*max abs logit difference ([\d.e+-]+), "
                         r"same prediction for ([\d.]+)%")


def make_workdir(inputs, root, models=None):
    """A model-card working directory whose CKPT_DIR and DATA_FILE point at the inputs, preprocessed; with copies of
    `models` in it (conftest.fast_models_of: the steps use them rather than export them again) when given."""
    from conftest import copy_models

    if models is not None:
        copy_models(models, root)
    env = {"DATA_FILE": str(inputs.tsv), "CKPT_DIR": str(inputs.checkpoint)}
    proc = run_script("preprocess_data.sh", cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    return root, env


def eager_logits(inputs):
    """Logits of the original TinyBERT computation (independent re-implementation) on all samples, and its accuracy.
    Sentences of like length go together, each group cut to its longest: the padding is masked out, as in the card."""
    dataset = read_sst2_tsv(str(inputs.tsv))
    arrays = reference_features(dataset.sentences, str(inputs.checkpoint / "vocab.txt"), 64)
    config = json.loads((inputs.checkpoint / "config.json").read_text())
    state = {name: tensor.double() for name, tensor in
             torch.load(inputs.checkpoint / "pytorch_model.bin", weights_only=True).items()}
    lengths = np.asarray(arrays[2]).sum(1)
    order = np.argsort(lengths, kind="stable")
    logits = np.zeros((len(dataset), config.get("num_labels", 2)))
    for start in range(0, len(order), 128):
        rows = order[start:start + 128]
        width = int(lengths[rows].max())
        logits[rows] = reference_logits(state, config, *(np.asarray(a)[rows, :width] for a in arrays))
    labels = np.asarray(dataset.labels)
    return logits, 100.0 * (logits.argmax(1) == labels).mean()


def shared_eager_logits(inputs, tmp_path_factory):
    """eager_logits(inputs), computed once for the run (xdist's workers share them)."""
    from conftest import shared_once

    from tinybert.data.dataset import file_sha256

    def make(folder):
        logits, accuracy = eager_logits(inputs)
        np.save(folder / "logits.npy", logits)
        (folder / "accuracy.json").write_text(json.dumps(accuracy))

    key = f"{file_sha256(str(inputs.checkpoint / 'pytorch_model.bin'))[:16]}-{file_sha256(str(inputs.tsv))[:16]}"
    folder = shared_once(tmp_path_factory, f"eager-{key}", make)
    return np.load(folder / "logits.npy"), json.loads((folder / "accuracy.json").read_text())


def _export(workdir, bs):
    """pth2onnx.sh: the card's static pair, and the fast models when missing; all checked here too."""
    root, env = workdir
    export = run_script("pth2onnx.sh", bs, cwd=root, env=env)
    assert export.returncode == 0, export.stderr
    checked = {name: (float(diff), float(agree)) for name, diff, agree in EXPORT_LINE.findall(export.stdout)}
    static = {name: checked.pop(name) for name in (f"TinyBERT_bs{bs}", f"TinyBERT_sim_bs{bs}")}
    assert max(diff for diff, _ in static.values()) <= 1e-4, export.stdout
    return checked  # the fast models, when they were (re)made


class Exports:
    """pth2onnx.sh <bs> in the working directory, once per batch size (`__call__`) or again (`again`);
    both return the fast models' check lines of that run (empty when they were up to date)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.checked: dict[int, dict] = {}

    def __call__(self, bs: int) -> dict:
        if bs not in self.checked:
            self.again(bs)
        return self.checked[bs]

    def again(self, bs: int) -> dict:
        self.checked[bs] = _export(self.workdir, bs)
        return self.checked[bs]


class Chain:
    """(bs, ort_model): export, ais_inference.sh into result/<name>, postprocess_data.sh; once per (bs, ort_model).
    Returns (result folder, scored JSON). Names: smoke_bs{bs} for the fast model, smoke_{ort_model}_bs{bs} otherwise."""

    def __init__(self, workdir, exported: Exports):
        self.workdir, self.exported, self.done = workdir, exported, {}

    def __call__(self, bs, ort_model):
        if (bs, ort_model) not in self.done:
            self.exported(bs)
            self.done[bs, ort_model] = infer_and_score(self.workdir, bs, ort_model)
        return self.done[bs, ort_model]


def infer_and_score(workdir, bs, ort_model):
    root, env = workdir
    name = f"smoke_bs{bs}" if ort_model == "fast" else f"smoke_{ort_model}_bs{bs}"
    infer = run_script("ais_inference.sh", bs, cwd=root, env={**env, "OUTPUT_DIRNAME": name, "ORT_MODEL": ort_model})
    assert infer.returncode == 0, infer.stderr
    assert "[INFO] backend: onnxruntime" in infer.stdout
    line = re.search(r"\[INFO\] throughput 1000\*batchsize\.mean\(([\d.]+)\)/NPU_compute_time\.mean\([\d.]+\): [\d.]+",
                     infer.stdout)
    # ais_bench's mean batch size: the static model's bs; the CPU paths' calls hold at most bs sentences
    # (length-bucketed, CALL_TOKENS positions at most), and the summary records the same mean.
    summary = json.loads((root / "result" / f"{name}_summary.json").read_text())
    calls = summary["NPU_compute_time"]["count"]
    assert line and (float(line.group(1)) == bs if ort_model == "static" else 1 <= float(line.group(1)) <= bs)
    assert float(line.group(1)) == pytest.approx(summary["throughput"] * summary["NPU_compute_time"]["mean"] / 1000,
                                                 rel=1e-3)
    assert calls * bs >= len(summary["filesinfo"])
    post = run_script("postprocess_data.sh", name, "--json_out", f"acc_{name}.json", cwd=root, env=env)
    assert post.returncode == 0, post.stderr
    return root / "result" / name, json.loads((root / f"acc_{name}.json").read_text())


def written_logits(folder, count):
    """The logits of a TXT result folder's first `count` samples."""
    return np.array([[float(v) for v in (folder / f"input{i}_0.txt").read_text().split()] for i in range(count)])
