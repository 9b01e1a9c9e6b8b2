"""The `loadgen` step's command line: MLPerf LoadGen's scenarios on the model the settings name (or a registry row),
as loadgen/run.py runs them; an INVALID result prints LoadGen's reasons and exits 1."""

from __future__ import annotations

import argparse

from tinybert.cli.parsers import DEFAULTS, StepTable, non_negative_int, positive_int
from tinybert.settings import CALL_TOKENS, CLASSIFY_BATCH, LOADGEN_PROFILES, SEQ_LEN

STEPS = StepTable()
step = STEPS.step


def _qps_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.replace(",", " ").split()]
    except ValueError:
        values = []
    if not values or not all(0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected positive QPS values such as '200,400,800', got {text!r}")
    return values


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _positive_float(text)


def _target_options(p) -> None:
    """LoadGen's targets from the settings table, the same in a run and in the side-by-side measurement."""
    p.add_argument("--latency_ms", type=_positive_float, default=float(DEFAULTS["LOADGEN_LATENCY_MS"]),
                   help="LOADGEN_LATENCY_MS: Server's p99 bound")
    p.add_argument("--offline_qps", type=_positive_float, default=float(DEFAULTS["LOADGEN_OFFLINE_QPS"]),
                   help="LOADGEN_OFFLINE_QPS: Offline's expected samples/s")
    p.add_argument("--wait_ms", type=_non_negative_float, default=float(DEFAULTS["LOADGEN_WAIT_MS"]),
                   help="LOADGEN_WAIT_MS: Server's batcher waits at most this for more rows")


@step("loadgen", "MLPerf LoadGen's SingleStream, MultiStream, Server (one QPS or a sweep) or Offline scenario, "
                 "performance or accuracy mode, on the model the settings name")
def _loadgen(argv, prog):
    from tinybert.loadgen.run import MODES, SCENARIOS
    from tinybert.loadgen.sut import BATCHERS
    from tinybert.registry import backend_names

    p = STEPS.parser("loadgen", prog)
    p.add_argument("--scenario", required=True, choices=SCENARIOS)
    p.add_argument("--mode", default="performance", choices=tuple(MODES))
    p.add_argument("--profile", default=DEFAULTS["LOADGEN_PROFILE"], choices=tuple(LOADGEN_PROFILES),
                   help="LOADGEN_PROFILE: min duration per run (quick for CI, full a minute, official MLPerf's 600 s)")
    p.add_argument("--qps", type=_qps_list, default=None,
                   help="Server's scheduled QPS; several (a,b,c) run a sweep with table.md, loadgen.json and "
                        f"latency_qps.png (default: LOADGEN_QPS, {DEFAULTS['LOADGEN_QPS']})")
    p.add_argument("--out", default=DEFAULTS["LOADGEN_DIR"],
                   help="LOADGEN_DIR: each run adds a new loadgen-<scenario>-<time> folder with LoadGen's logs here")
    p.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"], help="BIN_DIR: the dev set's features, LoadGen's QSL")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint models export from")
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR")
    p.add_argument("--backend", default=DEFAULTS["BACKEND"], choices=("auto", *backend_names()), help="BACKEND")
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"], help="ORT_MODEL")
    p.add_argument("--gpu_model", default=DEFAULTS["GPU_MODEL"], help="GPU_MODEL")
    p.add_argument("--row", default=None,
                   help="a registry path by row or name instead of the settings (e.g. OV8, the OpenVINO int8 peer)")
    p.add_argument("--requests", default=DEFAULTS["REQUESTS"], help="REQUESTS: worker threads, one call each")
    p.add_argument("--threads", type=positive_int, default=None, help="threads in all (default: physical cores)")
    p.add_argument("--device", type=non_negative_int, default=None, help="DEVICE, for a GPU backend")
    p.add_argument("--call_tokens", type=non_negative_int, default=CALL_TOKENS, help="CALL_TOKENS: the call budget")
    p.add_argument("--bucket_edges", default=DEFAULTS["BUCKET_EDGES"], help="BUCKET_EDGES")
    p.add_argument("--batch_size", type=positive_int, default=CLASSIFY_BATCH,
                   help="Offline's length-sorted batch (then split by CALL_TOKENS) and Server's most rows per call")
    p.add_argument("--calibration_file", default=None, help="CALIB_FILE, for a calibrated int8 model to export")
    _target_options(p)
    p.add_argument("--expected_ms", type=_positive_float, default=float(DEFAULTS["LOADGEN_EXPECTED_MS"]),
                   help="LOADGEN_EXPECTED_MS: SingleStream/MultiStream expected latency")
    p.add_argument("--batcher", default=DEFAULTS["LOADGEN_BATCHER"], choices=BATCHERS,
                   help="LOADGEN_BATCHER: budget, or nowait (one row per call: the baseline)")
    p.add_argument("--min_duration_ms", type=positive_int, default=None,
                   help="overrides the profile's min duration (e.g. the shortest run a test needs)")
    p.add_argument("--no_warm", action="store_true",
                   help="skip running every call shape once before the test (a runtime that compiles per shape "
                        "then compiles inside it)")
    p.add_argument("--json_out", default=None, help="also write the outcome(s) as JSON here")
    a = p.parse_args(argv)
    if a.qps is not None and len(a.qps) > 1 and a.scenario != "Server":
        p.error(f"--qps with several values is a Server sweep, got --scenario {a.scenario}")
    if a.qps is not None and len(a.qps) > 1 and a.mode != "performance":
        p.error(f"--qps with several values is a performance sweep, got --mode {a.mode}")

    from dataclasses import asdict

    from tinybert.fileio import write_json_atomic
    from tinybert.loadgen.run import Targets, judge, open_model, run, sweep

    targets = Targets(profile=a.profile, latency_ms=a.latency_ms, qps=(a.qps or [float(DEFAULTS["LOADGEN_QPS"])])[0],
                      offline_qps=a.offline_qps, expected_ms=a.expected_ms, wait_ms=a.wait_ms, batcher=a.batcher,
                      min_duration_ms=a.min_duration_ms)
    requests = a.requests
    if a.scenario == "SingleStream" and a.row is None and requests == "auto":
        requests = "1"  # one query in flight at a time: one call on every thread, no worker left idle
    settings = dict(model_dir=a.model_dir, threads=a.threads, requests=requests, device=a.device, seq_len=SEQ_LEN,
                    batch_size=a.batch_size, bucket_edges=a.bucket_edges, call_tokens=a.call_tokens)
    settings.update(calibration_file=a.calibration_file)
    if a.row is None:
        settings.update(backend=a.backend, ort_model=a.ort_model, gpu_model=a.gpu_model)
    model = open_model(a.ckpt_dir, a.bin_dir, row=a.row, warm_shapes_first=not a.no_warm, **settings)
    print(f"[INFO] LoadGen {a.scenario} {a.mode}, profile {a.profile}: {model.describe}")
    swept = a.scenario == "Server" and a.qps is not None and len(a.qps) > 1
    try:
        outcomes = sweep(model, a.qps, targets, a.out) if swept else [run(model, a.scenario, a.mode, targets, a.out)]
    finally:
        if model.close is not None:
            model.close()
    if a.json_out:
        write_json_atomic(a.json_out, {"model": model.describe, "outcomes": [asdict(o) for o in outcomes]})
    judge(outcomes, swept)


@step("loadgen-measure", "side by side per path (the project's CPU paths and the OpenVINO int8 peer): LoadGen's "
                         "SingleStream p90, Offline samples/s, the highest VALID Server QPS with the budget batcher "
                         "and the no-wait baseline")
def _loadgen_measure(argv, prog):
    p = STEPS.parser("loadgen-measure", prog)
    p.add_argument("--paths", default=None,
                   help="comma-separated ORT_MODEL paths and/or the peer row OV8 (default: the project's CPU paths "
                        "this machine runs, and OV8)")
    p.add_argument("--qps", type=_qps_list, default=None,
                   help="Server's sweep (default: 0.2, 0.4 ... 1.0 x each path's Offline samples/s)")
    p.add_argument("--out", default=DEFAULTS["LOADGEN_DIR"], help="LOADGEN_DIR: a new loadgen-measure-<time> here")
    p.add_argument("--profile", default=DEFAULTS["LOADGEN_PROFILE"], choices=tuple(LOADGEN_PROFILES),
                   help="LOADGEN_PROFILE")
    p.add_argument("--min_duration_ms", type=positive_int, default=None, help="overrides the profile's min duration")
    p.add_argument("--no_warm", action="store_true", help="skip the warm-up of every call shape (a trial run only)")
    p.add_argument("--bin_dir", default=DEFAULTS["BIN_DIR"], help="BIN_DIR: the dev set's features")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR")
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR")
    p.add_argument("--calibration_file", default=None, help="CALIB_FILE, for the calibrated int8 models")
    _target_options(p)
    a = p.parse_args(argv)
    from tinybert.loadgen.measure import default_paths, measure

    paths = [x for x in (a.paths or "").replace(",", " ").split()] or default_paths()
    common = ["--profile", a.profile, "--bin_dir", a.bin_dir, "--ckpt_dir", a.ckpt_dir, "--model_dir", a.model_dir,
              "--latency_ms", f"{a.latency_ms:g}", "--offline_qps", f"{a.offline_qps:g}", "--wait_ms", f"{a.wait_ms:g}"]
    if a.min_duration_ms:
        common += ["--min_duration_ms", str(a.min_duration_ms)]
    if a.calibration_file:
        common += ["--calibration_file", a.calibration_file]
    if a.no_warm:
        common.append("--no_warm")
    measure(paths, common, a.out, a.qps)
