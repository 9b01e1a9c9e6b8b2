"""classify with the real model of the generated checkpoint (its fast ONNX export): labels equal to the
step pipeline's, test/classify.sh, SIGKILL at random points and a resumed run's bytes, and the Ray
engine on a local two-CPU cluster. All slow: each spawns processes that load the model."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, WORDS, copy_models, input_dirs, run_cli, run_script

from tinybert.classify.shards import work_dir_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fast_models(small_fast_models, tmp_path_factory):
    """MODEL_DIR with the fast models of the generated checkpoint (the run's one export of them, copied)."""
    return copy_models(small_fast_models, tmp_path_factory.mktemp("fast_models"))


@pytest.fixture(scope="module")
def big_tsv(tmp_path_factory):
    """600 labelled sentences over the generated vocabulary, with a few bad lines."""
    rng = random.Random(7)
    words = [w for w in WORDS if not w.startswith("##")]
    lines = [f"{' '.join(rng.choices(words, k=rng.randint(1, 30)))}\t{rng.randint(0, 1)}" for _ in range(600)]
    lines[17], lines[300] = "", "bad\tlabel\tcount"
    path = tmp_path_factory.mktemp("big") / "big.tsv"
    path.write_text("sentence\tlabel\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def classify_args(source, out, small_inputs, models, *more):
    return ["classify", source, "--output", out, "--ckpt_dir", small_inputs.checkpoint, "--model_dir", models,
            "--no_progress", *more]


def test_labels_equal_the_step_pipeline(small_inputs, fast_models, tmp_path):
    from tinybert.data.features import preprocess
    from tinybert.steps.inference import run_inference
    from tinybert.steps.postprocess import score

    out = tmp_path / "out.tsv"
    run_cli(*classify_args(small_inputs.tsv, out, small_inputs, fast_models, "--chunk_sentences", 5,
                           "--with_sentence", "--ort_model", "fast"), check=True)  # the fp32 path the pipeline runs
    bin_dir = tmp_path / "bert_bin"
    preprocess(str(small_inputs.tsv), str(small_inputs.checkpoint / "vocab.txt"), str(bin_dir), 64, progress=False)
    report = run_inference(str(fast_models / "TinyBERT_fast.onnx"), input_dirs(bin_dir), str(tmp_path / "result"), 64,
                           progress=False, bucket_edges="tight")
    score(report.result_dir, str(bin_dir), predictions_out=str(tmp_path / "pipeline.tsv"), with_logits=True)
    pipeline = [line.split("\t") for line in (tmp_path / "pipeline.tsv").read_text().splitlines()[1:]]
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(rows) == len(pipeline) == small_inputs.count
    assert [(r[0], r[1]) for r in rows] == [(p[0], p[1]) for p in pipeline]  # index and label, in input order
    logits = np.array([[float(p[2]), float(p[3])] for p in pipeline])
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose([[float(r[2]), float(r[3])] for r in rows], expected, atol=1.5e-4)
    sentences = [line.split("\t")[0] for line in small_inputs.tsv.read_text(encoding="utf-8").splitlines()[1:]]
    assert [r[4] for r in rows] == sentences


def test_classify_script(small_inputs, fast_models, tmp_path):
    env = {"CKPT_DIR": str(small_inputs.checkpoint), "MODEL_DIR": str(fast_models), "CHUNK_SENTENCES": "8"}
    proc = run_script("classify.sh", small_inputs.tsv, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    output = tmp_path / "dev.classified.tsv"  # the default: the input's name, in the working directory
    assert len(output.read_text().splitlines()) == small_inputs.count + 1
    assert "[INFO] accuracy: " in proc.stdout and "sentences/s" in proc.stdout and "chunks of 8" in proc.stdout
    assert "[INFO] ORT_MODEL=auto -> " in proc.stdout and "ORT_MODEL=auto -> " in proc.stdout.split("rate:")[1]
    again = run_script("classify.sh", small_inputs.tsv, cwd=tmp_path, env=env)
    assert again.returncode == 2 and "already exists; refusing to overwrite it" in again.stderr
    assert "Traceback" not in again.stderr
    usage = run_script("classify.sh", cwd=tmp_path, env=env)
    assert usage.returncode == 2 and usage.stderr.startswith("usage: bash test/classify.sh <input")


def _start(args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tinybert", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _done(work: str) -> int:
    try:
        return sum(name.endswith(".json") and name.startswith("chunk-") for name in os.listdir(work))
    except OSError:
        return 0


def _kill_when(proc: subprocess.Popen, work: str, chunks: int, delay: float) -> str:
    """SIGKILL once `chunks` chunks are done and `delay` s more have passed; what the kill hit."""
    while proc.poll() is None and _done(work) < chunks:
        time.sleep(0.005)
    time.sleep(delay)
    if proc.poll() is not None:
        return "finished"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return f"killed at {_done(work)} chunk(s)"


def test_sigkill_at_random_points_then_resume_gives_the_same_bytes(small_inputs, fast_models, big_tsv, tmp_path):
    args = lambda out: classify_args(big_tsv, out, small_inputs, fast_models, "--chunk_sentences", 12)  # noqa: E731
    reference = tmp_path / "reference.tsv"
    run_cli(*args(reference), check=True)
    out, rng = tmp_path / "out.tsv", random.Random(1)
    work, hits = work_dir_for(str(out)), []
    for chunks in (0, 2, 9, 17, 30, 41):  # of 50; the first kill lands during start-up
        # Within about a chunk of that point: a chunk of 12 small sentences takes milliseconds.
        hits.append(_kill_when(_start(args(out)), work, chunks, rng.uniform(0.0, 0.004)))
        # An output, if any, is the whole file (a kill after publishing, before the work folder was removed).
        assert not out.exists() or out.read_bytes() == reference.read_bytes(), hits
    assert sum(hit.startswith("killed at") and hit != "killed at 0 chunk(s)" for hit in hits) >= 3, hits
    finished = out.exists() and not os.path.exists(work)  # the last run got to the end before its kill
    final = _start(args(out))
    code = final.wait()  # 0: it finished the work; 2: the output exists, complete
    assert code == (2 if finished else 0), final.stderr.read().decode()
    assert out.read_bytes() == reference.read_bytes()
    indices = [line.split("\t")[0] for line in out.read_text().splitlines()[1:]]
    assert indices == [str(i) for i in range(600) if i not in (17, 300)]  # 0 lost, 0 duplicated
    assert not os.path.exists(work)


def test_ray_engine_on_a_local_two_cpu_cluster_gives_the_same_bytes(small_inputs, fast_models, big_tsv, tmp_path):
    """A local run stopped after a few chunks, finished by Ray: the shards both engines wrote make the
    file of an uninterrupted local run."""
    args = lambda out, *more: classify_args(big_tsv, out, small_inputs, fast_models, "--chunk_sentences", 100,  # noqa: E731
                                            *more)
    reference = tmp_path / "reference.tsv"
    run_cli(*args(reference), check=True)
    out = tmp_path / "out.tsv"
    hit = _kill_when(_start(args(out)), work_dir_for(str(out)), 2, 0.0)
    assert hit.startswith("killed at"), hit
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    ray = subprocess.run([sys.executable, "-m", "tinybert", *map(str, args(out, "--engine", "ray", "--ray_cpus", 2))],
                         env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    assert ray.returncode == 0, ray.stdout + ray.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert "engine ray" in ray.stdout and "already done" in ray.stdout
    # A quiet cluster: no Ray logs on the terminal, only classify's own report of the bad lines.
    assert [line[:7] for line in ray.stderr.splitlines()] == ["[WARN] "], ray.stderr
