"""One place for each rule: the settings table reaches the shell (`settings --shell`), the scripts'
help and docs/settings.md (`--markdown`); model file names come from `paths`; one BACKEND rule (`backend`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO, assert_clean_error, run_cli, run_script

from tinybert import registry, settings
from tinybert.model_kinds import MODEL_KINDS
from tinybert.docs_tables import settings_text
from tinybert.runtimes import route
from tinybert.runtimes import route as backend_choice
from tinybert.errors import BackendUnavailableError, ModelFileError, UsageError
from tinybert.settings import SETTINGS, Setting

NAMES = [s.name for s in SETTINGS]
SCRIPTS = sorted(p.name for p in (REPO / "test").glob("*.sh") if p.name != "common.sh")


def _clean_env(**values) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in NAMES}
    return {**env, "PYTHONPATH": str(REPO), **values}


def _eval_in_bash(shell_code: str, names, env) -> dict:
    """Evaluate `shell_code` under set -u and read back each variable."""
    script = shell_code + "".join(f'printf "%s\\0" "${n}"\n' for n in names)
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dict(zip(names, proc.stdout.split("\0")))


def _shell(*args, env=None) -> str:
    proc = subprocess.run([sys.executable, "-m", "tinybert", "settings", "--shell", *args], env=env or _clean_env(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- the table ---------------------------------------------------------------------------------------

def test_every_setting_has_a_reason_and_known_scripts():
    assert len(set(NAMES)) == len(NAMES)
    for index, setting in enumerate(SETTINGS):
        assert setting.why.strip(), setting.name
        assert set(setting.scripts) <= set(SCRIPTS), setting.name
        assert not (setting.default and setting.per_backend), f"{setting.name}: one kind of default"
        own = [script for script, _ in setting.script_defaults]
        assert len(set(own)) == len(own) and set(own) <= set(setting.scripts or SCRIPTS), setting.name
        for match in re.finditer(r"\{(\w+)\}", setting.default):
            ref = match.group(1)
            if ref in settings.RUN_VALUES:
                continue
            earlier = {s.name: s for s in SETTINGS[:index]}
            assert ref in earlier, f"{setting.name} refers to {ref}, which is not an earlier setting"
            assert not earlier[ref].scripts or set(setting.scripts) <= set(earlier[ref].scripts), setting.name


def test_the_sequence_length_the_scripts_pass_is_the_one_the_steps_assume(small_inputs, tmp_path):
    """What a user sees: `settings --shell` gives test/*.sh SEQ_LEN, preprocess_data.sh writes features that long,
    and the Python steps' default (settings.SEQ_LEN: exports, the benchmark) is that length."""
    shell = _eval_in_bash(_shell(), ["SEQ_LEN"], _clean_env())
    env = _clean_env(DATA_FILE=str(small_inputs.tsv), CKPT_DIR=str(small_inputs.checkpoint), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "test" / "preprocess_data.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = json.loads((tmp_path / "bert_bin" / "manifest.json").read_text(encoding="utf-8"))["max_seq_length"]
    row_bytes = (tmp_path / "bert_bin" / "input_ids" / "input0.bin").stat().st_size  # int64 [1, seq_len]
    assert written == int(shell["SEQ_LEN"]) == settings.SEQ_LEN == row_bytes // 8


def test_typed_constants_follow_the_table():
    assert settings.BATCH_SIZES == tuple(map(int, settings.default("BATCH_SIZES").split()))
    assert settings_text.default_of("LOOP", "onnxruntime") == str(registry.loop_default("onnxruntime"))


def test_cli_option_defaults_come_from_the_table(monkeypatch):
    import tinybert.bench.benchmark
    import tinybert.steps.perf
    from tinybert.cli import main as cli

    calls = {}
    monkeypatch.setattr(tinybert.bench.benchmark, "run_benchmark", lambda run: calls.setdefault("benchmark", run))
    monkeypatch.setattr(tinybert.steps.perf, "measure", lambda *a, **k: calls.setdefault("perf", (a, k)))
    assert cli.run("benchmark", []) == 0 and cli.run("perf", ["--model", "m.onnx", "--batchsize", "1"]) == 0
    run, d = calls["benchmark"], settings.defaults()
    assert (run.model_dir, run.data_file, run.output_root) == (d["CKPT_DIR"], d["DATA_FILE"], d["BENCH_DIR"])
    assert (run.batch_sizes, run.repeats, run.seq_len, run.opset) == (settings.BATCH_SIZES, settings.REPEATS,
                                                                      settings.SEQ_LEN, settings.OPSET)
    assert (run.calibration_samples, run.calibration_seed) == (settings.CALIB_SAMPLES, settings.CALIB_SEED)
    (model, batch, loop, warmup, *_), options = calls["perf"]
    assert loop == registry.loop_default("onnxruntime") and warmup == settings.WARMUP
    assert options["bucket_edges"] == d["BUCKET_EDGES"]
    assert (options["repeats"], options["min_seconds"]) == (settings.PERF_REPEATS, settings.PERF_SECONDS)
    assert settings.PERF_SECONDS == float(d["PERF_SECONDS"]) and settings.PERF_REPEATS == int(d["PERF_REPEATS"])


# --- settings --shell ---------------------------------------------------------------------------------

def test_shell_assignments_give_the_table_defaults():
    values = _eval_in_bash(_shell(), NAMES + ["stamp"], _clean_env())
    assert re.fullmatch(r"\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d", values["stamp"])
    expected = {name: value.replace("{stamp}", values["stamp"]) for name, value in settings.defaults().items()}
    assert {n: values[n] for n in NAMES} == expected
    assert values["DATA_FILE"] == "./glue_dir/SST-2/dev.tsv" and values["SEQ_LEN"] == "64"
    assert values["LOOP"] == "" and values["OUTPUT_DIRNAME"] == ""  # no single default: left empty


def test_shell_assignments_keep_values_from_the_environment():
    env = _clean_env(GLUE_DIR="/data/my SST-2", SEQ_LEN="128", BACKEND="onnxruntime", LOOP="7", DYNAMIC_DIMS="",
                     EVAL_DIR="mine")
    values = _eval_in_bash(_shell(env=env), NAMES, env)
    assert values["GLUE_DIR"] == "/data/my SST-2" and values["DATA_FILE"] == "/data/my SST-2/dev.tsv"
    assert values["SEQ_LEN"] == "128" and values["BACKEND"] == "onnxruntime" and values["LOOP"] == "7"
    assert values["EVAL_DIR"] == "mine" and values["DYNAMIC_DIMS"] == ""
    assert values["OPSET"] == settings.default("OPSET")


def test_shell_assignments_quote_any_default(monkeypatch):
    hostile = "a b'c\"d$HOME`x`\\e}f*~g\nh|<i>"
    table = (Setting("FIRST", hostile, "-"), Setting("SECOND", "{FIRST}/x'y", "-"), Setting("EMPTY", "", "-"),
             Setting("PLAIN", "./p q/{FIRST}", "-"))
    monkeypatch.setattr(settings_text, "for_script", lambda script: table)
    code = settings_text.shell_assignments()
    values = _eval_in_bash(code, ["FIRST", "SECOND", "EMPTY", "PLAIN"], _clean_env())
    assert values == {"FIRST": hostile, "SECOND": hostile + "/x'y", "EMPTY": "", "PLAIN": "./p q/" + hostile}


def test_shell_assignments_per_script():
    def names(script):
        return {line.split("=", 1)[0] for line in _shell("--script", script).splitlines()}

    shared = {s.name for s in SETTINGS if not s.scripts}
    assert names("benchmark.sh") == shared | {"stamp", "BATCH_SIZES", "BENCH_DIR", "REPEATS", "CALIB_FILE",
                                              "CALIB_SAMPLES", "CALIB_SEED", "CALL_TOKENS"}
    assert names("test/perf.sh") == shared | {"stamp", "LOOP", "PERF_SECONDS", "PERF_REPEATS", "REQUESTS", "CALL_TOKENS",
                                              "CALIB_FILE", "CALIB_SAMPLES", "CALIB_SEED"}
    assert "EVAL_DIR" in names("eval_all.sh") and "EVAL_DIR" not in names("preprocess_data.sh")


def test_common_sh_bootstraps_python_with_the_table_default():
    common = (REPO / "test" / "common.sh").read_text()
    assert f'PYTHON="${{PYTHON:-{settings.default("PYTHON")}}}"' in common


# --- help and README ------------------------------------------------------------------------------------

def test_help_lists_the_settings_of_the_script():
    text = run_cli("settings", "--script", "perf.sh", check=True).stdout
    assert re.search(r"^  SEQ_LEN +64$", text, re.M) and re.search(r"^  LOOP +1000 on ais_bench, 1000 on gpu, 1000 on cann, 100 on onnxruntime",
                                                                    text, re.M)
    assert "BENCH_DIR" not in text
    every = run_cli("settings", check=True).stdout
    assert all(re.search(rf"^  {name} ", every, re.M) for name in NAMES)


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.slow
def test_script_help_shows_its_settings(script, tmp_path):
    proc = run_script(script, "--help", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: bash test/{script}"), proc.stderr
    assert proc.stdout == proc.stdout.split("\n", 1)[0] + "\n" + settings_text.help_text(script)


def _markdown_table() -> str:
    return subprocess.run([sys.executable, "-m", "tinybert", "settings", "--markdown"], env=_clean_env(),
                          capture_output=True, check=True).stdout.decode("utf-8")


def test_the_docs_have_the_generated_settings_table():
    text = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", text, re.S)
    assert found, "docs/settings.md: expected the settings table between settings-table markers"
    assert found.group(1) == _markdown_table(), \
        "docs/settings.md is out of date: paste `python -m tinybert settings --markdown`"


def test_readme_common_settings_show_the_tables_defaults():
    """README's short table of the settings people change most: ten of them, each default as the table has it."""
    generated = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", _markdown_table(), re.M))
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## 常用设置", 1)[1].split("\n#", 1)[0]
    shown = re.findall(r"^\| `(\w+)` \| (.*?) \|", section, re.M)
    assert len(shown) == 10
    assert [(name, default) for name, default in shown if generated.get(name) != default] == []


# --- nothing spelled twice in the shell -----------------------------------------------------------------

def _code(path) -> str:
    """The script without comments (a # that starts a word, outside quotes, well enough for these files)."""
    return "\n".join(re.sub(r"(^|\s)#(?![!]).*$", "", line) for line in path.read_text().splitlines())


@pytest.mark.parametrize("script", SCRIPTS + ["common.sh"])
def test_scripts_spell_no_model_file_name_and_no_default(script):
    path = REPO / "test" / script
    text = path.read_text()
    # The card's entry scripts (TinyBERT_pth2onnx.py, ...) are not models.
    assert not re.search(r"TinyBERT_(?!(pre|post)process_data\.py|pth2onnx\.py)", text), script
    assert ".onnx\"" not in text and ".om\"" not in text, script
    code = _code(path)
    bootstrap = f'${{PYTHON:-{settings.default("PYTHON")}}}'
    defaults = re.findall(r"\$\{\w+:-[^}]+\}", code.replace(bootstrap, ""))
    assert not defaults, f"{script}: defaults spelled in the shell: {defaults}"
    assert settings.default("BATCH_SIZES") not in text, script
    for name in ("SEQ_LEN", "OPSET", "REPEATS"):
        value = settings.default(name)
        assert not re.search(rf"(--\w+[= ]|=)[\"']?{value}\b", code), f"{script} spells {name}={value}"
    for backend, value in registry.loop_defaults():
        assert not re.search(rf"--loop[= ][\"']?{value}\b", code), f"{script} spells the {backend} LOOP {value}"


def _common_functions() -> dict[str, str]:
    """The helper functions of test/common.sh and their bodies."""
    code = _code(REPO / "test" / "common.sh")
    return dict(re.findall(r"^(\w+)\(\) \{(.*?)^\}", code, re.S | re.M)) | dict(
        re.findall(r"^(\w+)\(\) \{(.*?)\}$", code, re.M))


def _uses(code: str, name: str) -> bool:
    return bool(re.search(rf"\$\{{?{name}\b|backend_setting {name}\b", code))


def _forwards(script: str, name: str, seen=()) -> bool:
    """The script passes the setting on: it uses $NAME, evals a step's arguments from the settings that name it,
    calls a common.sh helper that does, or runs another test/*.sh that does."""
    from tinybert.classify.options import settings_passed

    code = _code(REPO / "test" / script)
    helpers = _common_functions()
    if re.search(r'eval "\$\(tinybert settings --arguments classify\)"', code) and name in settings_passed():
        return True
    if _uses(code, name) or any(_uses(body, name) for helper, body in helpers.items()
                                if re.search(rf"(^|[\s(]){helper}\b", code, re.M)):
        return True
    children = set(re.findall(r"test/(\w+\.sh)", code)) - {script, *seen}
    return any(_forwards(child, name, (*seen, script)) for child in children)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_setting_a_script_declares_reaches_its_step(script):
    for setting in settings.for_script(script):
        if setting.scripts:  # its own settings (the shared ones are common.sh's, checked below)
            assert _forwards(script, setting.name), f"{script} declares {setting.name} but never passes it on"


def test_classify_options_come_from_one_table():
    """classify's parser, test/classify.sh's arguments and ClassifyOptions are one table (classify/options.py)."""
    from dataclasses import fields, replace

    from tinybert.classify.options import ClassifyOptions, from_namespace, settings_passed, shell_arguments
    from tinybert.cli.classify import STEPS, add_options

    parser = STEPS.parser("classify", None)
    add_options(parser)
    assert from_namespace(parser.parse_args(["in.tsv"])) == replace(ClassifyOptions("in.tsv"),
                                                                   backend=settings.default("BACKEND"))
    given = from_namespace(parser.parse_args(["in.tsv", "--max_seq_length", "32", "--no_progress", "--batch_size",
                                              "8", "--with_sentence", "--engine", "ray"]))
    assert (given.seq_len, given.progress, given.batch_size, given.with_sentence, given.engine) == (32, False, 8,
                                                                                                   True, "ray")
    reads = {s.name for s in settings.for_script("classify.sh")}
    assert set(settings_passed()) <= reads and len(settings_passed()) < len(fields(ClassifyOptions))
    values = {name: f"{name} value" for name in settings_passed()}
    code = shell_arguments() + 'printf "%s\\n" "${classify_settings[@]}"\n'
    for given_batch, batch in (("", []), ("yes", ["--batch_size", "CLASSIFY_BATCH value"])):
        printed = subprocess.run(["bash", "-euc", code], env={**values, "batch_given": given_batch, "PATH": os.environ["PATH"]},
                                 capture_output=True, text=True, check=True).stdout.splitlines()
        assert printed[printed.index("--max_seq_length"):][:2] == ["--max_seq_length", "SEQ_LEN value"]
        assert ("--batch_size" in printed) == bool(batch) and printed.count("CKPT_DIR value") == 1
        assert len(printed) == 2 * len(settings_passed()) - (not batch) * 2


def test_every_shared_setting_is_used():
    code = "\n".join(_code(p) for p in (REPO / "test").glob("*.sh"))
    defaults = " ".join(s.default for s in SETTINGS)
    for setting in SETTINGS:
        if not setting.scripts:
            assert re.search(rf"\$\{{?{setting.name}\b", code) or f"{{{setting.name}}}" in defaults, setting.name


# --- paths ---------------------------------------------------------------------------------------------

CARD_NAMES = {"onnx": "TinyBERT_bs4.onnx", "sim": "TinyBERT_sim_bs4.onnx", "dynamic": "TinyBERT_dynamic.onnx",
              "sim_dynamic": "TinyBERT_sim_dynamic.onnx", "fast": "TinyBERT_fast.onnx", "int8": "TinyBERT_int8.onnx",
              "om": "TinyBERT_bs4.om", "om_gears": "TinyBERT_bs4_dyn.om", "int8_static": "TinyBERT_int8_static.onnx",
              "ov_int8": "TinyBERT_ov_int8.xml"}


@pytest.mark.parametrize("kind", sorted(CARD_NAMES))
@pytest.mark.slow
def test_paths_of_each_kind(kind):
    assert set(CARD_NAMES) == {k.name for k in MODEL_KINDS}
    printed = run_cli("paths", kind, "--batch_size", 4, check=True).stdout
    assert printed == f"./{CARD_NAMES[kind]}\n"
    elsewhere = run_cli("paths", kind, "--batch_size", 4, "--model_dir", "/m o", check=True).stdout
    assert elsewhere == f"/m o/{CARD_NAMES[kind]}\n"


@pytest.mark.slow
def test_paths_for_the_scripts():
    def paths(*args):
        return run_cli("paths", *args, check=True).stdout.splitlines()

    assert paths("onnxruntime") == ["./TinyBERT_fast.onnx"]  # ORT_MODEL's default
    assert paths("onnxruntime", "--ort_model", "int8") == ["./TinyBERT_int8.onnx"]
    assert paths("onnxruntime", "--ort_model", "static", "--batch_size", 8) == ["./TinyBERT_sim_bs8.onnx"]
    assert paths("ais_bench", "--batch_size", 8) == ["./TinyBERT_bs8.om"]
    assert paths("ais_bench", "--batch_size", 8, "--dynamic_dims", "16,32,48,64") == ["./TinyBERT_bs8_dyn.om"]
    assert paths("fast_models", "--model_dir", "m") == [
        "m/TinyBERT_dynamic.onnx", "m/TinyBERT_sim_dynamic.onnx", "m/TinyBERT_fast.onnx", "m/TinyBERT_int8.onnx"]
    assert paths("sim", "om", "--batch_size", 2) == ["./TinyBERT_sim_bs2.onnx", "./TinyBERT_bs2.om"]


@pytest.mark.slow
def test_paths_errors():
    assert_clean_error(run_cli("paths", "onnxruntime", "--ort_model", "fp16"),
                       f"expected ORT_MODEL {registry.alternatives(registry.ort_models())}, got 'fp16'", code=2)
    assert_clean_error(run_cli("paths", "onnxruntime", "--ort_model", "C"), "got 'C'", code=2)  # a row, not a path
    assert_clean_error(run_cli("paths", "sim"), "expected a batch size for the sim model", code=2)
    assert_clean_error(run_cli("paths", "tflite"), "expected a model kind among", "got 'tflite'", code=2)
    assert_clean_error(run_cli("settings", "--get", "NOPE"), "expected a setting among", "got 'NOPE'", code=2)
    assert_clean_error(run_cli("settings", "--get", "LOOP", "--backend", "tpu"), "got 'tpu'", code=2)
    assert run_cli("settings", "--get", "LOOP", "--backend", "ais_bench", check=True).stdout == "1000\n"


# --- the backend rule ----------------------------------------------------------------------------------

@pytest.fixture
def fake_ais_bench(tmp_path):
    """PYTHONPATH entries with an importable stand-in `ais_bench` package."""
    pkg = tmp_path / "py" / "ais_bench"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    return f"{REPO}{os.pathsep}{tmp_path / 'py'}"


def _backend(*args, cwd, pythonpath=None):
    return run_cli("backend", *args, cwd=cwd, env={"PYTHONPATH": pythonpath or str(REPO)})


def _chosen(*args, cwd, pythonpath=None) -> str:
    proc = _backend(*args, cwd=cwd, pythonpath=pythonpath)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_auto_without_ais_bench_is_onnxruntime(tmp_path):
    (tmp_path / "TinyBERT_bs1.om").write_bytes(b"om")
    assert _chosen("--batch_size", 1, cwd=tmp_path) == "onnxruntime"
    assert _chosen("--batch_size", 1, "--chip_name", "310P3", cwd=tmp_path) == "onnxruntime"


@pytest.mark.slow
def test_auto_with_ais_bench_needs_the_om_models_or_a_chip(tmp_path, fake_ais_bench):
    def chosen(*args):
        return _chosen("--requested", "auto", *args, cwd=tmp_path, pythonpath=fake_ais_bench)

    assert chosen("--batch_size", 1) == "onnxruntime"  # nothing to run ais_bench on
    assert chosen("--batch_size", 1, "--chip_name", "310P3") == "ais_bench"  # the step builds the OM
    (tmp_path / "TinyBERT_bs1.om").write_bytes(b"om")
    assert chosen("--batch_size", 1) == "ais_bench"
    assert chosen("--batch_size", 1, 4) == "onnxruntime"  # every batch size needs its OM
    assert chosen("--batch_size", 1, "--dynamic_dims", "16,64") == "onnxruntime"  # gear models are others
    (tmp_path / "TinyBERT_bs1_dyn.om").write_bytes(b"om")
    assert chosen("--batch_size", 1, "--dynamic_dims", "16,64") == "ais_bench"
    assert chosen("--batch_size", 1, "--model_dir", "elsewhere") == "onnxruntime"


@pytest.mark.slow
def test_explicit_backends(tmp_path, fake_ais_bench):
    missing = _backend("--requested", "ais_bench", "--batch_size", 1, cwd=tmp_path)
    assert_clean_error(missing, "ais_bench is not installed for", "gitee.com/ascend/tools", "BACKEND=onnxruntime",
                       code=3)
    no_om = _backend("--requested", "ais_bench", "--batch_size", 2, cwd=tmp_path, pythonpath=fake_ais_bench)
    assert_clean_error(no_om, "./TinyBERT_bs2.om: expected the OM model for batch size 2, found no such file "
                              "(run test/onnx2om.sh 2 <chip_name>)", code=2)
    assert _chosen("--requested", "ais_bench", "--batch_size", 2, "--chip_name", "310P3", cwd=tmp_path,
                   pythonpath=fake_ais_bench) == "ais_bench"
    assert _chosen("--requested", "onnxruntime", "--batch_size", 2, cwd=tmp_path, pythonpath=fake_ais_bench) == \
        "onnxruntime"
    assert_clean_error(_backend("--requested", "npu", "--batch_size", 1, cwd=tmp_path),
                       "expected BACKEND auto, ais_bench, gpu, cann or onnxruntime, got 'npu'", code=2)


def test_a_new_backend_is_one_table_entry(tmp_path, monkeypatch):
    """A new backend is one registry entry; placed first, auto tries it before the others."""
    request = route.Request(model_dir=str(tmp_path))
    other = registry.Backend("other", "a test runtime", 10, "no_such_module_for_tests", "no other runtime for {python}",
                             "ort_model", missing_model="{path}: expected the ONNX model for batch size {bs}")
    monkeypatch.setattr(registry, "BACKENDS", (other,) + registry.BACKENDS)
    real_unmet = route.backend_unmet
    monkeypatch.setattr(route, "backend_unmet", lambda entry, device=0: real_unmet(entry) if entry.name != "other" else
                        (None if installed["other"] else "not installed"))
    installed = {"other": True}
    assert backend_choice.choose_backend("auto", [1], request) == "onnxruntime"  # its model is missing
    with pytest.raises(ModelFileError, match="TinyBERT_fast.onnx: expected the ONNX model for batch size 1"):
        backend_choice.choose_backend("other", [1], request)
    (tmp_path / "TinyBERT_fast.onnx").write_bytes(b"onnx")
    assert backend_choice.choose_backend("auto", [1], request) == "other"
    assert backend_choice.choose_backend("other", [1], request) == "other"
    with pytest.raises(UsageError, match="expected BACKEND auto, other, ais_bench, gpu, cann or onnxruntime, got 'x'"):
        backend_choice.choose_backend("x", [1], request)
    installed["other"] = False
    assert backend_choice.choose_backend("auto", [1], request) == "onnxruntime"
    with pytest.raises(BackendUnavailableError, match=f"no other runtime for {re.escape(sys.executable)}"):
        backend_choice.choose_backend("other", [1], request)
    assert registry.loop_default("other") == 10 and ("other", "10") in registry.loop_defaults()


def test_cann_runs_the_simplified_static_model_and_is_never_chosen_by_auto(tmp_path):
    request = route.Request(model_dir=str(tmp_path))
    with pytest.raises(ModelFileError, match="TinyBERT_sim_bs8.onnx: expected the simplified ONNX model for "
                                             r"BACKEND=cann, found no such file \(run test/pth2onnx.sh 8\)"):
        backend_choice.choose_backend("cann", [8], request)
    (tmp_path / "TinyBERT_sim_bs8.onnx").write_bytes(b"onnx")
    assert backend_choice.choose_backend("cann", [8], request) == "cann"
    assert backend_choice.choose_backend("auto", [8], request) == "onnxruntime"
    assert route.backend_model("cann", request, 8) == str(tmp_path / "TinyBERT_sim_bs8.onnx")


# --- the scripts use the one rule -----------------------------------------------------------------------

FAKE_ATC = '''#!/usr/bin/env bash
for arg in "$@"; do case "$arg" in --output=*) out="${arg#--output=}" ;; esac; done
printf '%s\\n' "$@" >> "$RECORD"
echo om > "$out.om"
'''

# ais_bench stand-in: `--loop` prints the throughput line; otherwise writes one TXT output per sample
# (logits favouring the label read from the manifest, so accuracy is 100 %).
FAKE_AIS_BENCH = '''
import argparse, json, os
p = argparse.ArgumentParser()
for a in ("--model", "--input", "--output", "--output_dirname", "--outfmt", "--batchsize", "--loop", "--device"):
    p.add_argument(a)
a = p.parse_args()
with open(os.environ["RECORD"], "a") as r:
    r.write(f"ais_bench --model {a.model} --loop {a.loop}\\n")
if a.loop:
    print("[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(1.0): 1000.0")
    raise SystemExit
first = a.input.split(",")[0]
labels = json.load(open(os.path.join(os.path.dirname(first), "manifest.json")))["labels"]
name = a.output_dirname
out = os.path.join(a.output, name)
os.makedirs(out)
info = {}
for i, label in enumerate(labels):
    path = os.path.join(out, f"input{i}_0.txt")
    open(path, "w").write("0.000000 1.000000 \\n" if label else "1.000000 0.000000 \\n")
    info[str(i)] = {"infiles": [os.path.join(first, f"input{i}.bin")], "outfiles": [path]}
json.dump({"filesinfo": info, "args": {"batchsize": a.batchsize}, "npu_compute_time_list": [1.0]},
          open(os.path.join(a.output, name + "_summary.json"), "w"))
'''


@pytest.mark.slow
def test_eval_all_builds_oms_and_runs_ais_bench_when_a_chip_is_named(tmp_path, small_inputs):
    bin_dir, pkg = tmp_path / "bin", tmp_path / "py" / "ais_bench"
    bin_dir.mkdir()
    pkg.mkdir(parents=True)
    (bin_dir / "atc").write_text(FAKE_ATC)
    (bin_dir / "atc").chmod(0o755)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(FAKE_AIS_BENCH)
    record = tmp_path / "record.txt"
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(tmp_path / "py"),
           "RECORD": str(record), "CANN_SET_ENV": "/nonexistent/set_env.sh", "FAST_MODELS": "0",
           "DATA_FILE": str(small_inputs.tsv), "CKPT_DIR": str(small_inputs.checkpoint), "EVAL_DIR": "eval",
           "CHIP_NAME": "310P3"}
    proc = run_script("eval_all.sh", 2, cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[INFO] backend: ais_bench;" in proc.stdout
    calls = record.read_text()
    assert "--soc_version=Ascend310P3" in calls and "--output=./TinyBERT_bs2" in calls
    assert "ais_bench --model ./TinyBERT_bs2.om --loop None" in calls
    assert "ais_bench --model ./TinyBERT_bs2.om --loop 1000" in calls
    assert "| TinyBERT (bs2) |" in (work / "eval" / "table.md").read_text()
    assert "ais_bench" in (work / "eval" / "table.md").read_text()
    # ais_bench writes no JSON: its fps comes from the line it printed, kept in the log
    assert not (work / "eval" / "bs2_perf.json").exists()
    [row] = json.loads((work / "eval" / "table.json").read_text())["rows"]
    assert (row["throughput"], row["requests_in_flight"]) == (1000.0, 1)


@pytest.mark.slow
def test_eval_all_asks_the_same_rule_before_any_work(tmp_path, fake_ais_bench):
    env = {"PYTHONPATH": fake_ais_bench, "CANN_SET_ENV": "/nonexistent/set_env.sh", "EVAL_DIR": "eval",
           "DATA_FILE": str(tmp_path / "absent.tsv")}  # preprocessing fails at once after the choice
    without_om = run_script("eval_all.sh", 1, cwd=tmp_path, env=env)
    assert "[INFO] backend: onnxruntime;" in without_om.stdout, without_om.stdout + without_om.stderr
    (tmp_path / "TinyBERT_bs1.om").write_bytes(b"om")
    with_om = run_script("eval_all.sh", 1, cwd=tmp_path, env={**env, "EVAL_DIR": "eval2"})
    assert "[INFO] backend: ais_bench;" in with_om.stdout, with_om.stdout + with_om.stderr
    explicit = run_script("eval_all.sh", 1, 4, cwd=tmp_path, env={**env, "EVAL_DIR": "eval3", "BACKEND": "ais_bench"})
    assert_clean_error(explicit, "TinyBERT_bs4.om: expected the OM model for batch size 4", code=2)
    assert not (tmp_path / "eval3").exists()
