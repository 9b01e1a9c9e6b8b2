"""Running LoadGen's scenarios on a prepared model: targets from the settings table (its config read once per
process), each run's logs in a new folder and read back, and the Server QPS sweep with its table, JSON and plot."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from tinybert.errors import BackendUnavailableError, InvalidResultError, UsageError, expect
from tinybert.fileio import reserve_dir, write_json_atomic, write_text_atomic
from tinybert.loadgen.logs import ACCURACY, DETAIL, Detail, read_accuracy_log, read_detail
from tinybert.loadgen.sut import BATCHERS, BUDGET, Samples, Sut, warm, warm_shapes
from tinybert.settings import (LOADGEN_EXPECTED_MS, LOADGEN_LATENCY_MS, LOADGEN_MULTISTREAM_SAMPLES,
                               LOADGEN_OFFLINE_QPS, LOADGEN_PROFILES, LOADGEN_QPS, LOADGEN_SINGLESTREAM_PERCENTILE,
                               LOADGEN_TAIL_PERCENTILE, LOADGEN_WAIT_MS, TIMESTAMP_FORMAT, default)

# Not a model mlperf.conf names, so only its generic (*.Scenario) lines apply.
MODEL_NAME = "tinybert-sst2"
SCENARIOS = ("SingleStream", "MultiStream", "Server", "Offline")
MODES = {"performance": "PerformanceOnly", "accuracy": "AccuracyOnly"}
USER_CONF = "user.conf"
RESULT_JSON = "result.json"
# The figure each scenario is judged by, as LoadGen's detail log names it, with its unit.
FIGURES = {"SingleStream": ("result_90.00_percentile_latency_ns", "p90 latency"),
           "MultiStream": ("result_99.00_percentile_latency_ns", "p99 latency per 8-sample query"),
           "Server": ("result_scheduled_samples_per_sec", "scheduled samples/s at p99 within the bound"),
           "Offline": ("result_samples_per_second", "samples/s")}


@dataclass(frozen=True)
class Targets:
    """LoadGen's targets for a run, defaults from the settings table; `min_duration_ms` overrides the profile's."""

    profile: str = default("LOADGEN_PROFILE")
    latency_ms: float = LOADGEN_LATENCY_MS
    qps: float = LOADGEN_QPS
    offline_qps: float = LOADGEN_OFFLINE_QPS
    expected_ms: float = LOADGEN_EXPECTED_MS
    wait_ms: float = LOADGEN_WAIT_MS
    batcher: str = default("LOADGEN_BATCHER")
    min_duration_ms: int | None = None

    def __post_init__(self):
        expect(self.profile in LOADGEN_PROFILES, UsageError,
               f"expected a LoadGen profile among {', '.join(LOADGEN_PROFILES)}, got {self.profile!r}")
        expect(self.batcher in BATCHERS, UsageError,
               f"expected a Server batcher among {', '.join(BATCHERS)}, got {self.batcher!r}")
        for name in ("latency_ms", "qps", "offline_qps", "expected_ms"):
            expect(getattr(self, name) > 0, UsageError, f"expected a positive {name}, got {getattr(self, name)}")
        expect(self.wait_ms >= 0, UsageError, f"expected a non-negative wait_ms, got {self.wait_ms}")

    def duration_ms(self) -> int:
        return self.min_duration_ms or LOADGEN_PROFILES[self.profile].min_duration_ms

    def min_queries(self, scenario: str) -> int:
        return dict(LOADGEN_PROFILES[self.profile].min_queries)[scenario]

    def user_conf(self, scenario: str, qps: float) -> str:
        """The run's settings as LoadGen's user.conf lines (ms and queries/s, LoadGen's units)."""
        lines = {"min_duration": self.duration_ms(), "min_query_count": self.min_queries(scenario)}
        if scenario == "Server":
            lines.update(target_qps=qps, target_latency=self.latency_ms)
        elif scenario == "Offline":
            lines.update(target_qps=self.offline_qps)
        return "".join(f"{MODEL_NAME}.{scenario}.{key} = {value:g}\n" for key, value in lines.items())


@dataclass
class Model:
    """What LoadGen runs: an open runtime, the QSL's samples and how calls are made (the Classifier's batching)."""

    runtime: object
    samples: Samples
    batch_size: int
    bucket_edges: str
    call_tokens: int | None
    describe: str = ""
    warm: bool = True
    warmed: set = field(default_factory=set)  # shapes run once already: a sweep warms them once
    close: object = None  # lets the runtime go (the Classifier's close), when it has one


@dataclass
class Outcome:
    """One run: LoadGen's verdict and figures, the folder of its logs, and in accuracy mode the accuracy."""

    scenario: str
    mode: str
    folder: str
    valid: bool
    reasons: list[str]
    figures: dict = field(default_factory=dict)
    accuracy: dict | None = None
    target_qps: float | None = None
    batcher: str | None = None

    def line(self) -> str:
        """The result as LoadGen states it: the figure when VALID, never when INVALID."""
        where = f" ({self.folder})"
        if self.mode == "accuracy":
            acc = self.accuracy or {}
            return (f"[INFO] {self.scenario} accuracy: {acc.get('accuracy', float('nan')):.2f}% over "
                    f"{acc.get('samples', 0)} distinct samples{where}")
        if not self.valid:
            at = f" at {self.target_qps:g} QPS" if self.target_qps else ""
            return f"[ERROR] {self.scenario}{at}: INVALID{where}\n" + "".join(f"  - {r}\n" for r in self.reasons)
        f = self.figures
        if self.scenario == "SingleStream":
            main = f"p90 {f['p90_ms']:.3f} ms"
        elif self.scenario == "MultiStream":
            main = f"p99 {f['p99_ms']:.3f} ms per {LOADGEN_MULTISTREAM_SAMPLES}-sample query"
        elif self.scenario == "Server":
            main = f"{f['scheduled_qps']:.1f} scheduled QPS with p99 {f['p99_ms']:.3f} ms"
        else:
            main = f"{f['samples_per_s']:.1f} samples/s"
        return (f"[INFO] {self.scenario}: VALID, {main} (p50 {f['p50_ms']:.3f} ms, {f['queries']} queries){where}")


def loadgen():
    """LoadGen's module, or the one line saying how to install it."""
    try:
        import mlperf_loadgen
    except ImportError:
        raise BackendUnavailableError("expected MLPerf LoadGen (import mlperf_loadgen), got none: "
                                      "pip install mlcommons-loadgen (see requirements.txt)") from None
    return mlperf_loadgen


_LOADED: dict = {}  # LoadGen reads its config files once per process: a second FromConfig logs error_invalid_config


def _settings_fields(settings) -> list[str]:
    return [n for n in dir(settings) if not n.startswith("_") and not callable(getattr(settings, n))]


def loadgen_settings(lg, targets: Targets, scenario: str, mode: str, conf_path: str, qps: float):
    """LoadGen's settings for one run: mlperf.conf's generic lines and the user.conf (read on the process's first
    run only), then this run's targets from the settings table."""
    expect(scenario in SCENARIOS, UsageError, f"expected a scenario among {', '.join(SCENARIOS)}, got {scenario!r}")
    expect(mode in MODES, UsageError, f"expected a mode among {', '.join(MODES)}, got {mode!r}")
    if "base" not in _LOADED:
        base = lg.TestSettings()
        code = base.FromConfig(conf_path, MODEL_NAME, scenario)
        expect(code == 0, UsageError, f"{conf_path}: expected a config LoadGen reads, got error code {code}")
        _LOADED["base"] = base
    settings = lg.TestSettings()
    for name in _settings_fields(_LOADED["base"]):
        setattr(settings, name, getattr(_LOADED["base"], name))
    settings.scenario = getattr(lg.TestScenario, scenario)
    settings.mode = getattr(lg.TestMode, MODES[mode])
    settings.min_duration_ms = targets.duration_ms()
    settings.min_query_count = targets.min_queries(scenario)
    settings.single_stream_expected_latency_ns = int(targets.expected_ms * 1e6)
    settings.single_stream_target_latency_percentile = LOADGEN_SINGLESTREAM_PERCENTILE
    settings.multi_stream_expected_latency_ns = int(targets.expected_ms * 1e6)
    settings.multi_stream_samples_per_query = LOADGEN_MULTISTREAM_SAMPLES
    settings.multi_stream_target_latency_percentile = LOADGEN_TAIL_PERCENTILE
    settings.server_target_qps = float(qps)
    settings.server_target_latency_ns = int(targets.latency_ms * 1e6)
    settings.server_target_latency_percentile = LOADGEN_TAIL_PERCENTILE
    settings.offline_expected_qps = float(targets.offline_qps)
    return settings


def run_test(model: Model, scenario: str, mode: str, targets: Targets, folder: str, qps: float | None = None,
             quiet: bool = False) -> Outcome:
    """One LoadGen test into `folder` (its logs and result.json), read back as LoadGen judged it."""
    lg = loadgen()
    qps = targets.qps if qps is None else qps
    conf = os.path.join(folder, USER_CONF)
    write_text_atomic(conf, targets.user_conf(scenario, qps))
    settings = loadgen_settings(lg, targets, scenario, mode, conf, qps)
    sut = Sut(lg, model.runtime, model.samples, scenario, batch_size=(
        LOADGEN_MULTISTREAM_SAMPLES if scenario == "MultiStream" else model.batch_size),
        bucket_edges=model.bucket_edges, call_tokens=model.call_tokens, batcher=targets.batcher,
        wait_s=targets.wait_ms / 1000.0)
    if model.warm:
        shapes = [shape for shape in warm_shapes(model.samples, scenario, batch_size=sut.batch_size,
                                                 call_tokens=model.call_tokens, fixed_batch=model.runtime.batch_size,
                                                 batcher=targets.batcher) if shape not in model.warmed]
        tick = time.perf_counter()
        warm(model.runtime, model.samples, shapes)
        model.warmed.update(shapes)
        if not quiet and shapes:
            print(f"[INFO] warmed {len(shapes)} call shapes in {time.perf_counter() - tick:.1f} s before the test")
    log = lg.LogSettings()
    log.log_output.outdir = folder
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    count = model.samples.count
    qsl = lg.ConstructQSL(count, count, _nothing, _nothing)
    handle = lg.ConstructSUT(sut.issue, sut.flush)
    sut.start()
    try:
        lg.StartTestWithLogSettings(handle, qsl, settings, log)
    finally:
        sut.stop()
        lg.DestroySUT(handle)
        lg.DestroyQSL(qsl)
    if sut.errors:
        raise sut.errors[0]
    outcome = outcome_of(read_detail(os.path.join(folder, DETAIL)), scenario, mode, folder, qps, targets.batcher)
    if mode == "accuracy":
        outcome.accuracy = accuracy_of(os.path.join(folder, ACCURACY), model.samples)
        np.save(os.path.join(folder, "logits.npy"), outcome.accuracy.pop("logits"))
    write_json_atomic(os.path.join(folder, RESULT_JSON), asdict(outcome))
    return outcome


def _nothing(_samples) -> None:
    """LoadGen's load/unload: the samples are in memory for the whole process."""


def outcome_of(detail: Detail, scenario: str, mode: str, folder: str, qps: float | None = None,
               batcher: str | None = None) -> Outcome:
    """The figures LoadGen gave, in ms and per second; none kept for an INVALID run."""
    figures = {}
    if detail.valid or mode == "accuracy":
        figures = {"p50_ms": detail.latency_ms("50.00"), "p90_ms": detail.latency_ms("90.00"),
                   "p99_ms": detail.latency_ms("99.00"), "queries": detail.get("result_query_count"),
                   "scheduled_qps": detail.get("result_scheduled_samples_per_sec"),
                   "completed_qps": detail.get("result_completed_samples_per_sec"),
                   "samples_per_s": detail.get("result_samples_per_second"),
                   "early_stopping_p90_ms": _ns_ms(detail.get("early_stopping_latency_ss")),
                   "early_stopping_p99_ms": _ns_ms(detail.get("early_stopping_latency_ms"))}
        figures = {k: v for k, v in figures.items() if v is not None}
    valid = detail.valid or mode == "accuracy"
    return Outcome(scenario, mode, folder, valid, list(detail.reasons) if not detail.valid else [], figures,
                   target_qps=qps if scenario == "Server" else None, batcher=batcher if scenario == "Server" else None)


def _ns_ms(value) -> float | None:
    return float(value) / 1e6 if value else None


def accuracy_of(path: str, samples: Samples) -> dict:
    """Accuracy over every sample, from the logits LoadGen logged, by postprocess's own metrics."""
    from tinybert.steps.postprocess import classification_metrics

    logits = read_accuracy_log(path, samples.count)
    report = {"samples": int(samples.count), "logits": logits}
    if samples.labels is not None:
        report.update(classification_metrics(np.asarray(samples.labels), logits.argmax(axis=1)))
    return report


def new_folder(root: str, name: str) -> str:
    """A new folder for this run under `root` (loadgen-<name>-<time>, -1, -2 ... when taken): never an earlier one."""
    return reserve_dir(root, f"loadgen-{name}-{time.strftime(TIMESTAMP_FORMAT)}")


def run(model: Model, scenario: str, mode: str, targets: Targets, out_root: str, qps: float | None = None) -> Outcome:
    """One scenario, its logs in a new folder, its outcome printed as LoadGen stated it (`judge` raises if INVALID)."""
    folder = new_folder(out_root, f"{scenario}-{mode}")
    outcome = run_test(model, scenario, mode, targets, folder, qps)
    print(outcome.line().rstrip("\n"))
    return outcome


def judge(outcomes: list[Outcome], swept: bool = False) -> None:
    """InvalidResultError with LoadGen's reasons: for one run when INVALID, for a sweep when no point is VALID."""
    invalid = [o for o in outcomes if not o.valid]
    if swept:
        expect(highest_valid(outcomes) is not None, InvalidResultError,
               f"Server: no VALID point among {', '.join(f'{o.target_qps:g}' for o in outcomes)} QPS (reasons above)")
        return
    for o in invalid:
        raise InvalidResultError(f"{o.scenario}: LoadGen judged the run INVALID ({'; '.join(o.reasons)}); logs in "
                                 f"{o.folder}")


def sweep(model: Model, qps_list: list[float], targets: Targets, out_root: str) -> list[Outcome]:
    """Server at each scheduled QPS, in one process (LoadGen's config read once): each run's logs in its own
    subfolder, with table.md, loadgen.json and latency_qps.png."""
    expect(len(qps_list) > 0 and all(q > 0 for q in qps_list), UsageError,
           f"expected positive QPS values, got {qps_list}")
    folder = new_folder(out_root, "Server-sweep")
    outcomes = []
    for qps in qps_list:
        sub = os.path.join(folder, f"qps-{qps:g}")
        os.makedirs(sub)
        outcome = run_test(model, "Server", "performance", targets, sub, qps)
        print(outcome.line().rstrip("\n"))
        outcomes.append(outcome)
    write_sweep(folder, outcomes, targets, model.describe)
    best = highest_valid(outcomes)
    print(f"[INFO] highest VALID Server QPS at p99 <= {targets.latency_ms:g} ms: "
          f"{'none' if best is None else f'{best.target_qps:g}'}; table, JSON and plot in {folder}")
    return outcomes


def highest_valid(outcomes: list[Outcome]) -> Outcome | None:
    valid = [o for o in outcomes if o.valid]
    return max(valid, key=lambda o: o.target_qps) if valid else None


def sweep_table(outcomes: list[Outcome], targets: Targets, describe: str = "") -> str:
    """The sweep as markdown: INVALID points give their reasons, never a figure."""
    lines = [f"# Server sweep: p99 <= {targets.latency_ms:g} ms, batcher {targets.batcher}"
             + (f" (wait {targets.wait_ms:g} ms)" if targets.batcher == BUDGET else ""), ""]
    if describe:
        lines += [f"Model: {describe}", ""]
    lines += ["| target QPS | result | scheduled QPS | p50 ms | p99 ms | reasons |",
              "| ---- | ---- | ---- | ---- | ---- | ---- |"]
    for o in outcomes:
        if o.valid:
            f = o.figures
            lines.append(f"| {o.target_qps:g} | VALID | {f['scheduled_qps']:.1f} | {f['p50_ms']:.3f} | "
                         f"{f['p99_ms']:.3f} | - |")
        else:
            lines.append(f"| {o.target_qps:g} | INVALID | - | - | - | {'; '.join(o.reasons).replace('|', '/')} |")
    best = highest_valid(outcomes)
    lines += ["", f"Highest VALID QPS: {'none' if best is None else f'{best.target_qps:g}'}", ""]
    return "\n".join(lines)


def write_sweep(folder: str, outcomes: list[Outcome], targets: Targets, describe: str = "") -> None:
    write_text_atomic(os.path.join(folder, "table.md"), sweep_table(outcomes, targets, describe))
    write_json_atomic(os.path.join(folder, "loadgen.json"),
                      {"model": describe, "targets": asdict(targets), "points": [asdict(o) for o in outcomes],
                       "highest_valid_qps": getattr(highest_valid(outcomes), "target_qps", None)})
    plot_sweep(os.path.join(folder, "latency_qps.png"), outcomes, targets)


def plot_sweep(path: str, outcomes: list[Outcome], targets: Targets) -> None:
    """p50 and p99 against scheduled QPS, the bound as a line; VALID points filled, INVALID hollow (their latency
    read from the detail log, drawn only to show the knee), the highest VALID QPS marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label, color in (("50.00", "p50", "tab:blue"), ("99.00", "p99", "tab:red")):
        points = []
        for o in outcomes:
            detail = read_detail(os.path.join(o.folder, DETAIL))
            x = detail.get("result_scheduled_samples_per_sec") or o.target_qps
            points.append((x, detail.latency_ms(key), o.valid))
        ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linewidth=1, label=label)
        for x, y, valid in points:
            ax.scatter([x], [y], s=40, color=color, facecolors=color if valid else "none", zorder=3)
    ax.axhline(targets.latency_ms, color="gray", linestyle="--", label=f"bound {targets.latency_ms:g} ms (p99)")
    best = highest_valid(outcomes)
    if best is not None:
        ax.axvline(best.figures.get("scheduled_qps", best.target_qps), color="tab:green", linestyle=":",
                   label=f"highest VALID: {best.target_qps:g} QPS")
    ax.set_xlabel("scheduled QPS (Poisson arrivals)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title(f"LoadGen Server, batcher {targets.batcher}: filled VALID, hollow INVALID")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def open_model(ckpt_dir: str, bin_dir: str, *, row: str | None = None, warm_shapes_first: bool = True,
               **settings) -> Model:
    """The model the settings name (BACKEND, ORT_MODEL, GPU_MODEL ... as keywords of `tinybert.api.Classifier.open`)
    or a registry row by its label or name (`row`: a peer such as OV8), with the QSL of `bin_dir`'s features."""
    from tinybert.api import Classifier
    from tinybert.data.features import load_features

    features, _ = load_features(bin_dir)
    if row is None:
        classifier = Classifier.open(ckpt_dir, features_dir=bin_dir, quiet=False, **settings)
        runtime, describe, close = classifier.runtime, classifier.describe(), classifier.close
        batch_size, edges, call_tokens = classifier.batch_size, classifier.bucket_edges, classifier.call_tokens
    else:
        from tinybert.bench.rows import row as registry_row
        from tinybert.prepare import Calibration, ModelRequest, prepare

        path, calibration = registry_row(row), settings.get("calibration_file")
        keep = ("model_dir", "threads", "requests", "device", "seq_len")
        ready = prepare(ModelRequest(path=path, ckpt_dir=ckpt_dir, features_dir=bin_dir,
                                     calibration=Calibration(calibration) if calibration else None,
                                     **{k: v for k, v in settings.items() if k in keep and v is not None}))
        runtime, describe, close = ready.open(), f"row {path.row}: {ready.plan.describe()}", None
        given = Classifier.open.__kwdefaults__
        batch_size = settings.get("batch_size") or given["batch_size"]
        edges = settings.get("bucket_edges") or given["bucket_edges"]
        call_tokens = 0 if path.whole_batches else settings.get("call_tokens", given["call_tokens"])
    samples = Samples(features, model_seq_len=runtime.seq_len, bucket_edges=edges, source=bin_dir)
    return Model(runtime, samples, batch_size, edges, call_tokens, describe=describe, warm=warm_shapes_first,
                 close=close)


def singlestream_figures(runtime, features_dir: str, out_root: str) -> dict:
    """A benchmark row's SingleStream (quick profile) on its open runtime, batched as the Classifier batches: LoadGen's
    verdict and latencies, its logs in a new folder under `out_root`."""
    from tinybert.api import Classifier
    from tinybert.data.features import load_features

    given = Classifier.open.__kwdefaults__
    features, _ = load_features(features_dir)
    samples = Samples(features, model_seq_len=runtime.seq_len, bucket_edges=given["bucket_edges"],
                      source=features_dir)
    model = Model(runtime, samples, 1, given["bucket_edges"], given["call_tokens"])
    outcome = run_test(model, "SingleStream", "performance", Targets(profile="quick"),
                       new_folder(out_root, "SingleStream-benchmark"), quiet=True)
    figures = {key: outcome.figures.get(key) for key in ("p50_ms", "p90_ms", "p99_ms", "queries")}
    return {"valid": outcome.valid, "reasons": outcome.reasons, "folder": outcome.folder, **figures}

