"""BACKEND=cann: ONNX Runtime's CANN execution provider runs the simplified static model on an NPU.

The real provider (onnxruntime-cann) cannot load on this machine, so the wiring is checked against a
stand-in provider list: `onnxruntime.get_available_providers` reports CANNExecutionProvider and
`InferenceSession` records the providers it was given, then runs on the CPU. Without the stand-in,
this machine shows the clear exit-3 message a user without CANN gets.
"""

from __future__ import annotations

import json

import onnxruntime
import pytest
from conftest import QUICK_PERF, assert_clean_error, input_arg, run_cli, run_script

from tinybert.runtimes import open_runtime
from tinybert.errors import BackendUnavailableError

CANN = "CANNExecutionProvider"
HAS_REAL_CANN = CANN in onnxruntime.get_available_providers()
no_real_cann = pytest.mark.skipif(HAS_REAL_CANN, reason="this machine has the real CANN provider")

# Loaded at interpreter start (PYTHONPATH): the stand-in provider list for the script tests.
STAND_IN = '''
import json, os
import onnxruntime as ort

_real_session, _real_available = ort.InferenceSession, ort.get_available_providers()
ort.get_available_providers = lambda: ["CANNExecutionProvider", *_real_available]


class _RecordingSession(_real_session):
    def __init__(self, path, options=None, providers=None, **kwargs):
        with open(os.environ["PROVIDER_RECORD"], "a", encoding="utf-8") as record:
            record.write(json.dumps(providers) + "\\n")
        cpu = [p for p in providers if (p[0] if isinstance(p, (tuple, list)) else p) != "CANNExecutionProvider"]
        super().__init__(path, options, providers=cpu, **kwargs)


ort.InferenceSession = _RecordingSession
'''


@pytest.fixture(scope="module")
def made(small_features, small_onnx_bs4):
    return small_features, small_onnx_bs4


@pytest.fixture
def stand_in(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(STAND_IN, encoding="utf-8")
    record = tmp_path / "providers.jsonl"
    return {"PYTHONPATH": str(site), "PROVIDER_RECORD": str(record)}, record


def test_the_session_gets_cann_on_the_chosen_device_then_the_cpu(made, monkeypatch):
    _, model = made
    seen = []
    real_session = onnxruntime.InferenceSession

    def session(path, options=None, providers=None, **kwargs):
        seen.append(providers)
        return real_session(path, options, providers=[p for p in providers if p != seen[-1][0]], **kwargs)

    available = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CANN, *available])
    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    backend = open_runtime("cann", str(model), device=2)
    assert seen == [[(CANN, {"device_id": 2}), "CPUExecutionProvider"]]
    assert backend.name == "cann" and backend.batch_size == 4 and backend.seq_len == 64
    open_runtime("cann", str(model))
    assert seen[-1][0] == (CANN, {"device_id": 0})  # DEVICE defaults to 0


@pytest.mark.slow
def test_the_scripts_run_through_the_provider_on_device(made, stand_in, tmp_path):
    bin_dir, model = made
    env, record = stand_in
    env = {**env, "BACKEND": "cann", "DEVICE": "1", "BIN_DIR": str(bin_dir), "MODEL_DIR": str(model.parent),
           "CANN_SET_ENV": "/nonexistent/set_env.sh", "OUTPUT_DIRNAME": "on_npu"}
    infer = run_script("ais_inference.sh", 4, cwd=tmp_path, env=env)
    assert infer.returncode == 0, infer.stdout + infer.stderr
    assert f"runtime: cann on NPU 1, model {model}" in infer.stdout
    assert [json.loads(line) for line in record.read_text().splitlines()] == [
        [[CANN, {"device_id": 1}], "CPUExecutionProvider"]]
    summary = json.loads((tmp_path / "result" / "on_npu_summary.json").read_text())
    assert summary["args"]["backend"] == "cann" and summary["args"]["model"] == str(model)
    post = run_script("postprocess_data.sh", "on_npu", cwd=tmp_path, env=env)
    assert post.returncode == 0 and "accuracy:" in post.stdout, post.stderr
    perf = run_script("perf.sh", 4, cwd=tmp_path, env={**env, **QUICK_PERF, "LOOP": "2"})
    assert perf.returncode == 0, perf.stderr
    assert "full-length [4, 64] batch" in perf.stdout and "throughput 1000*batchsize.mean(4)" in perf.stdout
    assert json.loads(record.read_text().splitlines()[-1]) == [[CANN, {"device_id": 1}], "CPUExecutionProvider"]


@no_real_cann
@pytest.mark.slow
def test_without_the_provider_exit_3_and_the_install_hint(made, tmp_path):
    bin_dir, model = made
    with pytest.raises(BackendUnavailableError, match="pip install onnxruntime-cann"):
        open_runtime("cann", str(model))
    proc = run_cli("infer", "--model", model, "--input", input_arg(bin_dir), "--batchsize", 4, "--runtime", "cann",
                   "--output", tmp_path / "result")
    assert_clean_error(proc, "backend 'cann' needs ONNX Runtime's CANNExecutionProvider", "set_env.sh",
                       "pip install onnxruntime-cann", code=3)
    assert not (tmp_path / "result").exists()
    env = {"BACKEND": "cann", "BIN_DIR": str(bin_dir), "MODEL_DIR": str(model.parent),
           "CANN_SET_ENV": "/nonexistent/set_env.sh"}
    for script in ("ais_inference.sh", "perf.sh"):
        assert_clean_error(run_script(script, 4, cwd=tmp_path, env=env), "pip install onnxruntime-cann", code=3)


def test_cann_settings_are_checked(made, tmp_path):
    bin_dir, model = made
    env = {"BACKEND": "cann", "BIN_DIR": str(bin_dir), "MODEL_DIR": str(tmp_path), "CANN_SET_ENV": "/nonexistent"}
    assert_clean_error(run_script("ais_inference.sh", 4, cwd=tmp_path, env=env),
                       "TinyBERT_sim_bs4.onnx", "BACKEND=cann", "run test/pth2onnx.sh 4", code=2)
    assert_clean_error(run_script("perf.sh", 4, cwd=tmp_path, env={**env, "DEVICE": "npu0"}),
                       "expected DEVICE to be an NPU or GPU id", "got 'npu0'", code=2)
    proc = run_cli("infer", "--model", model, "--input", input_arg(bin_dir), "--batchsize", 4, "--device", 1)
    assert_clean_error(proc, "--device 1: expected --runtime cann", code=2)
