"""ais_bench result folders: exact file formats, completeness, no overwrite, strict reading, the summary
beside the folder or inside it (ais_infer), per-gear folders merged, and disk errors while an inference
run writes one."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import enospc_after, input_dirs, publish

from tinybert.results import resultdir as resultdir_module
from tinybert.errors import PipelineError, ResultFolderError
from tinybert.fileio import natural_key
from tinybert.steps.gears import merge
from tinybert.results.resultdir import INNER_SUMMARY, ResultFolderWriter, Summary, format_txt, read_logits, read_summary


def test_txt_format_is_ais_bench_s():
    assert format_txt(np.array([[1.5, -2.25]], dtype=np.float32)) == "1.500000 -2.250000 \n"
    assert format_txt(np.array([[1e-7, 3.0]])) == "0.000000 3.000000 \n"


def test_natural_order_matches_ais_bench():
    names = ["input10.bin", "Input2.bin", "input9.bin", "input1.bin", "input100.bin"]
    assert sorted(names, key=natural_key) == ["input1.bin", "Input2.bin", "input9.bin", "input10.bin", "input100.bin"]


@pytest.mark.parametrize("outfmt", ["TXT", "BIN", "NPY"])
def test_round_trip_per_format(tmp_path, outfmt):
    logits = np.random.default_rng(0).normal(size=(11, 2)).astype(np.float32)
    final = publish(tmp_path, outfmt, logits, dirname="run")
    read = read_logits(final, [f"input{i}" for i in range(11)])
    np.testing.assert_allclose(read, logits, atol=5e-7 if outfmt == "TXT" else 0)
    assert sorted(os.listdir(tmp_path)) == ["run", "run_summary.json"]
    assert json.loads((tmp_path / "run_summary.json").read_text())["final"] == final
    if outfmt == "NPY":
        assert np.load(os.path.join(final, "input0_0.npy")).shape == (1, 2)
    if outfmt == "BIN":
        assert os.path.getsize(os.path.join(final, "input0_0.bin")) == 8


def test_runs_in_the_same_second_get_separate_folders(tmp_path):
    logits = np.zeros((2, 2), dtype=np.float32)
    first = publish(tmp_path, "TXT", logits, started=1_700_000_000)
    second = publish(tmp_path, "TXT", logits + 1, started=1_700_000_000)
    assert first != second and os.path.basename(second) == os.path.basename(first) + "-1"
    assert read_logits(first, ["input0", "input1"]).sum() == 0
    assert read_logits(second, ["input0", "input1"]).sum() == 4


def test_an_existing_named_folder_is_never_overwritten(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ResultFolderError, match="refusing to overwrite"):
        ResultFolderWriter(str(tmp_path), "TXT", "run")


def test_a_discarded_run_leaves_nothing(tmp_path):
    writer = ResultFolderWriter(str(tmp_path), "TXT")
    writer.write("input0", 0, np.zeros((1, 2)))
    writer.discard()
    assert os.listdir(tmp_path) == []


@pytest.fixture
def folder(tmp_path):
    return publish(tmp_path, "TXT", np.ones((4, 2), dtype=np.float32), dirname="r")


STEMS = ["input0", "input1", "input2", "input3"]


def test_missing_outputs_are_named(folder):
    os.remove(os.path.join(folder, "input2_0.txt"))
    with pytest.raises(ResultFolderError, match="missing input2_0.txt"):
        read_logits(folder, STEMS)


def test_extra_outputs_are_named(folder):
    with open(os.path.join(folder, "input4_0.txt"), "w") as handle:
        handle.write("1.0 2.0 \n")
    with pytest.raises(ResultFolderError, match="unexpected input4_0.txt"):
        read_logits(folder, STEMS)


@pytest.mark.parametrize("content, fragment", [
    ("1.000000 -2.0", "truncated"),
    ("1.000000 abc \n", "expected 2 numbers"),
    ("1.0 2.0 3.0 \n", "shape [1, 3]"),
    ("", "truncated"),
    ("\u00ff\u00fe\x00\x00 binary \n", "expected ais_bench TXT (ASCII numbers), got binary content"),
])
def test_malformed_txt_is_named(folder, content, fragment):
    with open(os.path.join(folder, "input1_0.txt"), "wb") as handle:
        handle.write(content.encode("utf-8"))
    with pytest.raises(ResultFolderError) as info:
        read_logits(folder, STEMS)
    assert "input1_0.txt" in str(info.value) and fragment in str(info.value)


def test_mixed_or_unknown_formats_are_refused(folder, tmp_path):
    np.save(os.path.join(folder, "input9_0.npy"), np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(ResultFolderError, match="one format"):
        read_logits(folder, STEMS)
    with pytest.raises(ResultFolderError, match="found no such folder"):
        read_logits(str(tmp_path / "absent"), STEMS)


def test_truncated_bin_is_named(tmp_path):
    final = publish(tmp_path, "BIN", np.ones((2, 2), dtype=np.float32), dirname="b")
    with open(os.path.join(final, "input1_0.bin"), "wb") as handle:
        handle.write(b"\0" * 5)
    with pytest.raises(ResultFolderError, match="input1_0.bin: expected 8 bytes"):
        read_logits(final, ["input0", "input1"])


@pytest.mark.parametrize("code, fragment", [
    (errno.ENOSPC, "No space left on device"),
    (errno.EACCES, "permission denied on"),
    (errno.EROFS, "Read-only file system"),
])
def test_disk_errors_while_writing_results_leave_nothing(small_inputs, small_features, tmp_path, monkeypatch, code,
                                                         fragment):
    from tinybert.steps.inference import run_inference

    monkeypatch.setattr(resultdir_module, "open", enospc_after(5, code), raising=False)
    with pytest.raises(PipelineError) as info:
        run_inference(str(small_inputs.checkpoint), input_dirs(small_features), str(tmp_path / "result"), 8,
                      runtime="pytorch", progress=False)
    assert "cannot write results under" in str(info.value) and fragment in str(info.value)
    assert re.search(r"input\d+_0\.txt", str(info.value))  # names the file that could not be written
    assert os.listdir(tmp_path / "result") == []


# --- the summary in either ais_bench layout -------------------------------------------------------

def _move_summary_inside(folder: str) -> str:
    """The ais_infer layout: the summary as `sumary.json` (sic) inside the folder, none beside it."""
    inside = os.path.join(folder, INNER_SUMMARY)
    os.rename(folder + "_summary.json", inside)
    return inside


def test_the_summary_is_found_beside_or_inside_the_folder(folder, tmp_path):
    beside = read_summary(folder)
    assert beside.path == folder + "_summary.json" and beside.data["final"] == folder
    inside = _move_summary_inside(folder)
    assert read_summary(folder) == Summary(beside.data, inside)
    os.remove(inside)
    assert read_summary(folder) is None


def test_the_summary_inside_is_never_an_output(folder):
    expected = read_logits(folder, STEMS)
    _move_summary_inside(folder)
    np.testing.assert_array_equal(read_logits(folder, STEMS), expected)


def test_two_summaries_must_agree(folder):
    shutil.copy(folder + "_summary.json", os.path.join(folder, INNER_SUMMARY))
    assert read_summary(folder).path == folder + "_summary.json"  # the same record, read once
    with open(os.path.join(folder, INNER_SUMMARY), "w") as handle:
        json.dump({"args": {"features": {"num_samples": 9}}}, handle)
    with pytest.raises(ResultFolderError) as info:
        read_summary(folder)
    assert str(info.value) == (f"{folder}: expected one inference summary, got two that differ: {folder}_summary.json "
                               f"and {folder}/{INNER_SUMMARY}; remove the one that does not belong to these outputs")


def test_a_damaged_summary_inside_is_named(folder):
    inside = _move_summary_inside(folder)
    with open(inside, "w") as handle:
        handle.write("{")
    with pytest.raises(ResultFolderError, match=f"{inside}: expected the ais_infer summary inside the result folder"):
        read_summary(folder)


def _gear_part(parts_root, gear: int, rows: dict, compute_ms: list[float], inside: bool) -> None:
    """One gear's ais_bench folder with outputs `rows` {sample: logits}, its summary in either layout."""
    folder = parts_root / f"gear{gear}"
    folder.mkdir(parents=True)
    for sample, logits in rows.items():
        (folder / f"input{sample}_0.txt").write_text(format_txt(np.array([logits])))
    summary = {"args": {"batchsize": "2"}, "npu_compute_time_list": compute_ms,
               "filesinfo": {str(i): {"outfiles": [str(folder / f"input{s}_0.txt")]} for i, s in enumerate(rows)}}
    target = folder / INNER_SUMMARY if inside else parts_root / f"gear{gear}_summary.json"
    target.write_text(json.dumps(summary))


def test_gear_merge_reads_each_gear_summary_in_either_layout(tmp_path):
    parts = tmp_path / "parts"
    _gear_part(parts, 16, {0: [1.0, 0.0], 2: [0.0, 1.0]}, [4.0], inside=True)
    _gear_part(parts, 32, {1: [0.5, 0.5], 3: [2.0, 1.0]}, [6.0, 10.0], inside=False)
    final = merge(str(parts), str(tmp_path / "result"), "TXT", "merged")
    np.testing.assert_allclose(read_logits(final, STEMS), [[1, 0], [0.5, 0.5], [0, 1], [2, 1]])
    summary = read_summary(final)
    assert summary.path == final + "_summary.json" and INNER_SUMMARY not in os.listdir(final)
    assert summary.data["npu_compute_time_list"] == [4.0, 6.0, 10.0]
    assert summary.data["throughput"] == pytest.approx(1000 * 2 / (20 / 3))
    assert not parts.exists()  # both gears' folders and summaries removed


def test_gear_merge_needs_each_gear_summary(tmp_path):
    parts = tmp_path / "parts"
    _gear_part(parts, 16, {0: [1.0, 0.0]}, [4.0], inside=False)
    os.remove(parts / "gear16_summary.json")
    with pytest.raises(ResultFolderError, match="gear16: expected the ais_bench summary of this gear .*found neither"):
        merge(str(parts), str(tmp_path / "result"), "TXT", "merged")
    assert os.listdir(parts) == ["gear16"] and not os.listdir(tmp_path / "result")  # nothing lost, nothing half-made
