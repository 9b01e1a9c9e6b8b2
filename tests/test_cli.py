"""`python -m tinybert <step>`: the step list, and mistakes that end in one `[ERROR]` line with a
non-zero exit code, no traceback and no output left behind."""

from __future__ import annotations

import pytest
from conftest import assert_clean_error, cli, input_arg, run_cli


def test_steps_are_listed_and_unknown_ones_refused(tmp_path):
    helped = run_cli("--help", cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: python -m tinybert <step>")
    for name in ("preprocess", "export", "export-fast", "infer", "postprocess", "perf", "predict", "benchmark"):
        assert f"\n  {name} " in helped.stdout, name
    unknown = run_cli("no-such-step", cwd=tmp_path)
    assert unknown.returncode == 2 and "steps:" in unknown.stdout


def test_missing_tsv_via_cli(small_inputs, tmp_path):
    proc = run_cli("preprocess", "--input_file", tmp_path / "nope.tsv", "--vocab_file",
                   small_inputs.checkpoint / "vocab.txt", "--output_dir", tmp_path / "bin", cwd=tmp_path)
    assert_clean_error(proc, "nope.tsv: expected the SST-2 TSV file", "found no such file", code=2)
    assert not (tmp_path / "bin").exists()


@pytest.mark.slow
def test_output_paths_under_a_regular_file_are_clear_errors(small_inputs, small_features, small_result, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a folder was expected")
    vocab = small_inputs.checkpoint / "vocab.txt"
    assert_clean_error(cli("preprocess", "--input_file", small_inputs.tsv, "--vocab_file", vocab,
                           "--output_dir", blocker / "bert_bin"),
                       "cannot write features", f"{blocker} is a file, expected a folder")
    assert_clean_error(cli("infer", "--runtime", "pytorch", "--model", small_inputs.checkpoint, "--input",
                           input_arg(small_features), "--batchsize", 8, "--output", blocker / "result"),
                       "cannot write results under", f"{blocker} is a file, expected a folder")
    for option in ("--predictions_out", "--json_out"):
        assert_clean_error(cli("postprocess", small_result, "--bin_dir", small_features, option, blocker / "out"),
                           f"{blocker} is a file, expected a folder")
    assert blocker.read_text() == "a file where a folder was expected"
