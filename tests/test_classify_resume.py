"""classify's work folder, in process with the stand-in model of test_classify.py: an interrupted run
is continued to the same bytes; a changed input, model or setting refuses the resume and names what
changed; damaged shards are run again; a run killed after publishing is finished; one writer at a
time. Also the Ray engine's connection rules, against a stand-in `ray` (the real one:
test_classify_model.py)."""

from __future__ import annotations

import os
import sys
import types

import pytest
from test_classify import SENTENCES, fake_model, options  # noqa: F401 (fake_model is a fixture)

import tinybert
from tinybert.classify import ray_engine as classify_ray
from tinybert.classify.pipeline import classify_corpus
from tinybert.classify.worker import ChunkClassifier
from tinybert.errors import BackendUnavailableError, DataFormatError, OutputError, UsageError
from tinybert.settings import model_path
from tinybert.classify.shards import WorkFolder, work_dir_for


@pytest.fixture
def corpus(tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(SENTENCES * 2)), "utf-8")
    return source


@pytest.fixture
def reference(small_inputs, fake_model, corpus, tmp_path):  # noqa: F811
    out = tmp_path / "reference.tsv"
    classify_corpus(options(corpus, out, small_inputs.checkpoint, fake_model))
    return out.read_bytes()


def interrupt_after(monkeypatch, chunks: int):
    """Stop the run with Ctrl-C when `chunks` chunks are done."""
    finish, calls = ChunkClassifier.finish, []

    def stopping(self, prepared, on_batch=None):
        if len(calls) == chunks:
            raise KeyboardInterrupt
        calls.append(prepared.spec.number)
        return finish(self, prepared, on_batch)
    monkeypatch.setattr(ChunkClassifier, "finish", stopping)
    return lambda: monkeypatch.setattr(ChunkClassifier, "finish", finish)


def interrupted(monkeypatch, run, chunks: int = 2):
    restore = interrupt_after(monkeypatch, chunks)
    with pytest.raises(KeyboardInterrupt):
        run()
    restore()


def done_chunks(out) -> list[str]:
    return sorted(n for n in os.listdir(work_dir_for(str(out))) if n.endswith(".json") and n.startswith("chunk-"))


def test_an_interrupted_run_is_continued_to_the_same_bytes(small_inputs, fake_model, corpus, reference, tmp_path,  # noqa: F811
                                                           monkeypatch, capsys):
    out = tmp_path / "out.tsv"
    run = lambda: classify_corpus(options(corpus, out, small_inputs.checkpoint, fake_model))  # noqa: E731
    interrupted(monkeypatch, run, chunks=2)
    assert not out.exists() and done_chunks(out) == ["chunk-000000.json", "chunk-000001.json"]
    capsys.readouterr()
    figures = run()
    assert out.read_bytes() == reference
    assert figures["classified"] == len(SENTENCES) * 2 - 8 and figures["sentences"] == len(SENTENCES) * 2
    assert "2 of 5 chunk(s) already done" in capsys.readouterr().out
    assert not os.path.exists(work_dir_for(str(out)))


def test_a_changed_input_model_or_setting_refuses_the_resume(small_inputs, fake_model, corpus, reference, tmp_path,  # noqa: F811
                                                             monkeypatch):
    out = tmp_path / "out.tsv"
    make = lambda **more: options(corpus, out, small_inputs.checkpoint, fake_model, **more)  # noqa: E731
    interrupted(monkeypatch, lambda: classify_corpus(make()))
    original = corpus.read_bytes()
    corpus.write_bytes(original + b"one more line\t1\n")
    with pytest.raises(UsageError, match=r"what changed: input.bytes: \d+ -> \d+; input.lines: 18 -> 19.*--restart"):
        classify_corpus(make())
    corpus.write_bytes(original.replace(b"great fun", b"great run"))  # same size, inside chunk 0
    with pytest.raises(DataFormatError, match="lines 2-5 differ from the input of the unfinished run"):
        classify_corpus(make())
    corpus.write_bytes(original)
    with pytest.raises(UsageError, match="settings.batch_size: 64 -> 8"):
        classify_corpus(make(batch_size=8))
    with pytest.raises(UsageError, match="settings.with_sentence: False -> True"):
        classify_corpus(make(with_sentence=True))
    model = model_path("fast", str(fake_model))
    open(model, "ab").write(b" re-exported")
    with pytest.raises(UsageError, match="model.sha256"):
        classify_corpus(make())
    assert len(done_chunks(out)) == 2 and not out.exists()  # nothing was lost by refusing
    classify_corpus(make(restart=True))
    assert out.read_bytes() == reference


def flip_a_label(shard: str) -> None:
    """The first row's label changed, the shard's size kept: only its checksum tells."""
    data = bytearray(open(shard, "rb").read())
    at = data.index(b"\t") + 1
    data[at:at + 1] = b"1" if data[at:at + 1] == b"0" else b"0"
    open(shard, "wb").write(bytes(data))


def test_a_damaged_shard_is_run_again(small_inputs, fake_model, corpus, reference, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Chunk 0's shard keeps its size with one label changed (its checksum tells), chunk 1's is cut short."""
    out = tmp_path / "out.tsv"
    run = lambda: classify_corpus(options(corpus, out, small_inputs.checkpoint, fake_model))  # noqa: E731
    interrupted(monkeypatch, run)
    same_size, truncated = (os.path.join(work_dir_for(str(out)), f"chunk-00000{n}.tsv") for n in (0, 1))
    size = os.path.getsize(same_size)
    flip_a_label(same_size)
    assert os.path.getsize(same_size) == size
    with open(truncated, "r+b") as handle:
        handle.truncate(10)
    capsys.readouterr()
    run()
    assert out.read_bytes() == reference
    warnings = capsys.readouterr().err
    for number in (0, 1):
        assert f"chunk-00000{number}.tsv: missing or not what its record says; chunk {number} is run again" in warnings


def test_a_run_killed_after_publishing_is_finished(small_inputs, fake_model, corpus, reference, tmp_path,  # noqa: F811
                                                   monkeypatch):
    out = tmp_path / "out.tsv"
    run = lambda: classify_corpus(options(corpus, out, small_inputs.checkpoint, fake_model))  # noqa: E731
    remove = WorkFolder.remove
    monkeypatch.setattr(WorkFolder, "remove", lambda self: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(WorkFolder, "remove", remove)
    assert out.read_bytes() == reference and os.path.isdir(work_dir_for(str(out)))
    assert run()["sentences"] == len(SENTENCES) * 2  # the same command finishes it, without refusing the output
    assert out.read_bytes() == reference and not os.path.exists(work_dir_for(str(out)))
    trash = work_dir_for(str(out)) + ".removing"  # a kill while removing the (renamed) work folder
    os.makedirs(os.path.join(trash, "sub"))
    with pytest.raises(OutputError, match="already exists"):
        run()
    assert not os.path.exists(trash) and out.read_bytes() == reference


def test_one_run_per_output_at_a_time(small_inputs, fake_model, corpus, tmp_path):  # noqa: F811
    out = tmp_path / "out.tsv"
    with WorkFolder(str(out)):
        with pytest.raises(OutputError, match="another classify run is writing"):
            classify_corpus(options(corpus, out, small_inputs.checkpoint, fake_model))
    assert not out.exists()


# --- the Ray engine's rules, against a stand-in ray ---------------------------------------------------

class FakeRay(types.SimpleNamespace):
    def __init__(self, cpus=6):
        super().__init__(inits=[], cluster_resources=lambda: {"CPU": cpus})

    def init(self, **kwargs):
        self.inits.append(kwargs)


def test_ray_joins_ray_address_else_starts_a_quiet_local_cluster(monkeypatch):
    ray = FakeRay()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert classify_ray._connect(ray, 2) is True
    local = ray.inits[-1]
    assert (local["address"], local["num_cpus"], local["include_dashboard"]) == ("local", 2, False)
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert classify_ray._connect(ray, None) is False
    joined = ray.inits[-1]
    assert joined["address"] == "ray://head:10001" and "num_cpus" not in joined and "include_dashboard" not in joined
    for kwargs in ray.inits:  # the package travels with the job; no worker logs on the driver's terminal
        assert kwargs["log_to_driver"] is False
        assert kwargs["runtime_env"]["py_modules"] == [os.path.dirname(tinybert.__file__)]

    def unreachable(**kwargs):
        raise ConnectionError("Could not find any running Ray instance.\nPlease specify ...")
    ray.init = unreachable
    with pytest.raises(BackendUnavailableError, match="^RAY_ADDRESS=ray://head:10001: expected a running Ray cluster "
                                                      "to join, got ConnectionError: Could not find any running Ray "
                                                      r"instance. \(unset RAY_ADDRESS"):
        classify_ray._connect(ray, None)


def test_ray_actor_count_and_errors(monkeypatch):
    ray = FakeRay(cpus=6)
    count = lambda actors, cpus, pending: classify_ray.actor_count(  # noqa: E731
        ray, types.SimpleNamespace(actors=actors, actor_cpus=cpus), pending)
    assert (count(None, 1, 100), count(None, 4, 100), count(None, 1, 3), count(5, 1, 100), count(None, 8, 9)) == \
        (6, 1, 3, 5, 1)
    wrapped = RuntimeError("actor failed")
    wrapped.__cause__ = DataFormatError("in.tsv: lines 2-5 changed")
    assert isinstance(classify_ray._pipeline_error(wrapped), DataFormatError)
    assert classify_ray._pipeline_error(RuntimeError("other")) is None
    monkeypatch.setitem(sys.modules, "ray", None)  # not installed
    with pytest.raises(BackendUnavailableError, match=r"ENGINE=ray needs Ray Data.*pip install 'ray\[data\]'"):
        classify_ray.run_ray(None, [object()], None, None, [])
