"""The model card's pipeline steps: preprocess, the exports, gears, postprocess, report and compare."""

from __future__ import annotations

import argparse

from tinybert.cli.parsers import DEFAULTS, StepTable, VOCAB_FILE, batch_sizes, positive_int
from tinybert.settings import EXPORT_TOLERANCE, OPSET, SEQ_LEN

STEPS = StepTable()
step = STEPS.step


@step("preprocess", "SST-2 TSV -> bert_bin/{input_ids,segment_ids,input_mask}/input{i}.bin + manifest.json")
def _preprocess(argv, prog):
    p = STEPS.parser("preprocess", prog)
    p.add_argument("--input_file", default=DEFAULTS["DATA_FILE"], help="SST-2 TSV (dev.tsv or test.tsv)")
    p.add_argument("--vocab_file", default=VOCAB_FILE, help="WordPiece vocabulary of the checkpoint")
    p.add_argument("--output_dir", default=DEFAULTS["BIN_DIR"], help="feature folder to create")
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--overwrite", action="store_true", help="replace features made from other input")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    from tinybert.data.features import preprocess

    preprocess(a.input_file, a.vocab_file, a.output_dir, a.max_seq_length, overwrite=a.overwrite,
               progress=not a.no_progress)


def _export_options(p: argparse.ArgumentParser, batch_size: bool) -> argparse.ArgumentParser:
    """The options both export steps share."""
    p.add_argument("--model_dir", default=DEFAULTS["CKPT_DIR"], help="TinyBERT checkpoint folder")
    if batch_size:
        p.add_argument("--batch_size", type=positive_int, required=True)
    p.add_argument("--output_dir", default=DEFAULTS["MODEL_DIR"], help="where the .onnx files go")
    p.add_argument("--opset", type=positive_int, default=OPSET)
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--features_dir", default=DEFAULTS["BIN_DIR"], help="real features for the numerical check")
    p.add_argument("--tolerance", type=float, default=EXPORT_TOLERANCE,
                   help="max abs logit difference to PyTorch allowed (fp32 models)")
    return p


@step("export", "checkpoint -> TinyBERT_bs{bs}.onnx -> TinyBERT_sim_bs{bs}.onnx, checked against PyTorch")
def _export(argv, prog):
    a = _export_options(STEPS.parser("export", prog), batch_size=True).parse_args(argv)
    from tinybert.export import export

    export(a.model_dir, a.batch_size, out_dir=a.output_dir, opset=a.opset, seq_len=a.max_seq_length,
           features_dir=a.features_dir, tolerance=a.tolerance)


@step("export-fast", "checkpoint -> TinyBERT_{dynamic,sim_dynamic,fast,int8}.onnx when missing or older than the weights")
def _export_fast(argv, prog):
    a = _export_options(STEPS.parser("export-fast", prog), batch_size=False).parse_args(argv)
    from tinybert.export import export_fast_models

    export_fast_models(a.model_dir, out_dir=a.output_dir, opset=a.opset, seq_len=a.max_seq_length,
                       features_dir=a.features_dir, tolerance=a.tolerance)


@step("export-int8-static", "fp32 fast model -> TinyBERT_int8_static.onnx, calibrated on a seeded sample of "
                            "a training TSV (cached, inputs recorded beside it)")
def _export_int8_static(argv, prog):
    from tinybert.settings import CALIB_SAMPLES, CALIB_SEED, MIN_AGREEMENT

    p = _export_options(STEPS.parser("export-int8-static", prog), batch_size=False)
    p.add_argument("--calibration_file", default=DEFAULTS["CALIB_FILE"],
                   help="CALIB_FILE: SST-2 TSV to calibrate on (training data, never the evaluation set)")
    p.add_argument("--calibration_samples", type=positive_int, default=CALIB_SAMPLES, help="CALIB_SAMPLES")
    p.add_argument("--calibration_seed", type=int, default=CALIB_SEED, help="CALIB_SEED")
    p.add_argument("--force", action="store_true", help="recalibrate even when the recorded inputs match")
    p.add_argument("--min_agreement", type=float, default=MIN_AGREEMENT,
                   help="the model is removed when it predicts like PyTorch for a smaller fraction of the check samples")
    a = p.parse_args(argv)
    from tinybert.export import export_static_int8

    export_static_int8(a.model_dir, a.calibration_file, out_dir=a.output_dir, samples=a.calibration_samples,
                       seed=a.calibration_seed, opset=a.opset, seq_len=a.max_seq_length, features_dir=a.features_dir,
                       force=a.force, min_agreement=a.min_agreement)


@step("export-model", "ORT_MODEL's model, written by its exporter when missing or older than the weights "
                      "(the calibrated ones on CALIB_FILE); for auto every model auto may choose here, gates recorded")
def _export_model(argv, prog):
    from tinybert.settings import CALIB_SAMPLES, CALIB_SEED

    p = _export_options(STEPS.parser("export-model", prog), batch_size=False)
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"], help="ORT_MODEL: the CPU path whose model to write "
                                                                     "(auto: each path auto may choose on this CPU)")
    p.add_argument("--batch_size", type=positive_int, default=None, help="for ORT_MODEL=static, the card's model")
    p.add_argument("--calibration_file", default=None,
                   help="CALIB_FILE: training TSV, for the models calibrated on one (int8_static, openvino_int8)")
    p.add_argument("--calibration_samples", type=positive_int, default=CALIB_SAMPLES, help="CALIB_SAMPLES")
    p.add_argument("--calibration_seed", type=int, default=CALIB_SEED, help="CALIB_SEED")
    a = p.parse_args(argv)
    from tinybert.prepare import Calibration, ModelRequest, prepare

    calibration = Calibration(a.calibration_file, a.calibration_samples, a.calibration_seed) \
        if a.calibration_file else None
    ready = prepare(ModelRequest(ort_model=a.ort_model, model_dir=a.output_dir, ckpt_dir=a.model_dir,
                                 batch_size=a.batch_size, features_dir=a.features_dir, calibration=calibration,
                                 opset=a.opset, seq_len=a.max_seq_length))
    if not ready.choice_lines():
        print(f"[INFO] ORT_MODEL={a.ort_model}: {ready.model}")


@step("gears", "Ascend gear models: split features per --dynamic_dims gear, or merge per-gear results")
def _gears(argv, prog):
    p = STEPS.parser("gears", prog)
    sub = p.add_subparsers(dest="action", required=True)
    sp = sub.add_parser("split", help="write <out>/gear<L>/{input_ids,segment_ids,input_mask}/input{i}.bin")
    sp.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"])
    sp.add_argument("--edges", required=True, help="gear sequence lengths, e.g. 16,32,48,64")
    sp.add_argument("--output_dir", required=True)
    sp.add_argument("--print_gears", action="store_true", help="print '<length> <folder>' per gear, for scripts")
    mp = sub.add_parser("merge", help="merge <parts>/gear<L> ais_bench folders into one result folder")
    mp.add_argument("--parts", required=True)
    mp.add_argument("--output", default=DEFAULTS["RESULT_DIR"])
    mp.add_argument("--output_dirname", default=None)
    mp.add_argument("--outfmt", default=DEFAULTS["OUTFMT"], choices=["TXT", "BIN", "NPY"])
    mp.add_argument("--gears_dir", default=None, help="the split's folder: records which features were run")
    a = p.parse_args(argv)
    from tinybert.steps import gears

    if a.action == "split":
        gears.split(a.bin_dir, a.edges, a.output_dir)
        if a.print_gears:
            for length, folder in gears.gear_folders(a.output_dir):
                print(length, folder)
    else:
        gears.merge(a.parts, a.output, a.outfmt, a.output_dirname, a.gears_dir)


@step("postprocess", "accuracy (or predictions) of a result folder against the feature manifest")
def _postprocess(argv, prog):
    p = STEPS.parser("postprocess", prog)
    p.add_argument("result", help="result folder: a name inside --result_root, or a path")
    p.add_argument("--result_root", default=DEFAULTS["RESULT_DIR"])
    p.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"], help="feature folder with manifest.json")
    p.add_argument("--predictions_out", default=None, help="also write index<TAB>prediction here")
    p.add_argument("--with_logits", action="store_true", help="add the two logits to the predictions file")
    p.add_argument("--json_out", default=None, help="write the figures as JSON here")
    p.add_argument("--skip_nonfinite", action="store_true",
                   help="score the finite outputs and leave out NaN/inf ones (default: refuse the folder)")
    a = p.parse_args(argv)
    from tinybert.steps.postprocess import resolve_result_dir, score

    score(resolve_result_dir(a.result, a.result_root), a.bin_dir, predictions_out=a.predictions_out,
          with_logits=a.with_logits, json_out=a.json_out, skip_nonfinite=a.skip_nonfinite)


@step("report", "assemble the accuracy/performance table recorded by test/eval_all.sh")
def _report(argv, prog):
    p = STEPS.parser("report", prog)
    p.add_argument("--eval_dir", required=True)
    p.add_argument("--batch_sizes", type=batch_sizes, required=True, help="space-separated, e.g. '1 4 8'")
    p.add_argument("--backend", required=True)
    p.add_argument("--model_dir", required=True)
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"], help="ORT_MODEL: whose matrix-multiply rate the "
                                                                     "header gives (auto: the path perf recorded)")
    p.add_argument("--accuracy_ort_model", default=None,
                   help="the path the accuracy column ran, where it differs from the speed column's (ORT_MODEL=auto)")
    a = p.parse_args(argv)
    from tinybert.steps.report import build_table

    print(build_table(a.eval_dir, list(a.batch_sizes), a.backend, a.model_dir, a.ort_model,
                      accuracy_ort_model=a.accuracy_ort_model), end="")


@step("compare", "hold two result folders of the same features against each other, sample by sample")
def _compare(argv, prog):
    from tinybert.steps.compare import DEFAULT_TOP

    p = STEPS.parser("compare", prog)
    p.add_argument("result_a", help="result folder A (e.g. the reference): a name inside --result_root, or a path")
    p.add_argument("result_b", help="result folder B, made from the same features")
    p.add_argument("--result_root", default=DEFAULTS["RESULT_DIR"])
    p.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"], help="feature folder with manifest.json (samples, labels, source)")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, help="how many of the most different samples to list")
    p.add_argument("--json_out", default=None, help="write the whole comparison as JSON here")
    p.add_argument("--max_abs_diff", type=float, default=None,
                   help="gate: exit 1 when the max |logit difference| exceeds this")
    p.add_argument("--min_agreement", default=None,
                   help="gate: exit 1 when fewer samples get the same prediction; a fraction (0.99) or a percentage (99%%)")
    a = p.parse_args(argv)
    from tinybert.steps.compare import compare, parse_agreement
    from tinybert.steps.postprocess import resolve_result_dir

    agreement = parse_agreement(a.min_agreement) if a.min_agreement is not None else None
    compare(resolve_result_dir(a.result_a, a.result_root), resolve_result_dir(a.result_b, a.result_root), a.bin_dir,
            top=a.top, json_out=a.json_out, max_abs_diff=a.max_abs_diff, min_agreement=agreement)
