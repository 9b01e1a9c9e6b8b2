"""What the machine can do (tinybert/capabilities/), faked: each CPU profile's derived answers,
hidden packages refused with their install hint, faking in-process and through the environment,
and the OpenVINO bf16 path allowed or refused by the profile, whatever this machine's CPU is."""

from __future__ import annotations

import numpy as np
import pytest

from tinybert import capabilities
from tinybert.capabilities import CPU_PROFILE_ENV, PROFILES, WITHOUT_ENV, current, faked, installed, require
from tinybert.errors import BackendUnavailableError, UsageError

# profile -> (class name, native bf16, int8 dot product, bf16 features, fp32 features)
EXPECTED = {
    "pre_avx2": ("pre-AVX2", False, "no SIMD int8 dot product", "no native bf16 (emulated)", "SSE"),
    "avx2": ("AVX2", False, "AVX2 u8s8 (no VNNI)", "no native bf16 (emulated)", "AVX2 FMA"),
    "avx_vnni": ("AVX2+VNNI", False, "VNNI", "no native bf16 (emulated)", "AVX2 FMA"),
    "avx512_vnni": ("AVX-512+VNNI", False, "VNNI", "no native bf16 (emulated)", "AVX-512 FMA"),
    "zen4": ("AVX-512+VNNI+BF16", True, "VNNI", "AVX512-BF16", "AVX-512 FMA"),
    "amx": ("AMX", True, "AMX-INT8", "AMX-BF16", "AVX-512 FMA"),
}


def test_every_profile_is_expected():
    assert set(EXPECTED) == set(PROFILES)


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_each_profile_gives_its_derived_answers(profile):
    real = current()
    with faked(profile=profile) as caps:
        assert current() is caps and caps.profile == profile and caps.flags == PROFILES[profile]
        answers = (caps.cpu_class, caps.native_bf16, caps.int8_dot_product, caps.features_for("bf16"),
                   caps.features_for("fp32"))
        assert answers == EXPECTED[profile]
        assert caps.features_for("int8_static") == caps.int8_dot_product
        assert f"FAKED CPU profile {profile!r}" in caps.describe()
        assert (caps.physical_cores, caps.packages) == (real.physical_cores, real.packages)  # only the CPU changes
    assert current() == real


def test_fakes_nest_and_unwind():
    real = current()
    with faked(profile="amx"):
        with faked(without=("openvino",)) as inner:
            assert inner.cpu_class == "AMX" and not inner.has("openvino") and not installed("openvino")
        assert current().cpu_class == "AMX" and current().hidden == frozenset()
        with pytest.raises(RuntimeError):
            with faked(profile="avx2"):
                raise RuntimeError("the fake must unwind on errors too")
        assert current().cpu_class == "AMX"
    assert current() == real


def test_hidden_packages_are_refused_with_the_install_hint():
    with faked(without="openvino, nncf"):
        for package in ("openvino", "nncf"):
            assert not installed(package) and not current().has(package)
            with pytest.raises(BackendUnavailableError, match=f"install it: pip install {package}"):
                require(package, "a test")
        assert installed("numpy") and require("numpy") is np  # others stay
    if installed("openvino"):
        assert require("openvino").__name__ == "openvino"


def test_a_package_that_is_not_installed_is_refused_the_same_way():
    with pytest.raises(BackendUnavailableError, match="no_such_package_here: expected it installed"):
        require("no_such_package_here")
    assert not installed("no_such_package_here")


@pytest.mark.parametrize("name, package", [("openvino", "openvino"), ("openvino-bf16", "openvino"),
                                           pytest.param("pytorch", "torch", marks=pytest.mark.slow)])
def test_hidden_backends_are_unavailable(tmp_path, name, package):
    from tinybert.runtimes import open_runtime

    model = tmp_path / "model.onnx"
    model.write_bytes(b"not read: the package check comes first")
    with faked(without=(package,)):
        with pytest.raises(BackendUnavailableError, match=f"{package}: expected it installed.*install it: pip"):
            open_runtime(name, str(model))


def test_hidden_providers_leave_the_provider_list(monkeypatch):
    import onnxruntime

    listed = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CANNExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    assert capabilities.ort_providers() == tuple(listed)
    with faked(without=("cuda", "cann")) as caps:
        assert capabilities.ort_providers() == ("TensorrtExecutionProvider", "CPUExecutionProvider")
        assert caps.hidden == {"cuda", "cann"}
    monkeypatch.setenv(WITHOUT_ENV, "tensorrt")
    caps = capabilities.detect()
    assert caps.ort_providers == ("CUDAExecutionProvider", "CANNExecutionProvider", "CPUExecutionProvider")
    assert caps.unmet("cann") is None and caps.unmet("tensorrt") is not None
    assert capabilities.ort_providers() == ("CUDAExecutionProvider", "CANNExecutionProvider", "CPUExecutionProvider")


def test_the_environment_fakes_what_detect_reads(monkeypatch):
    monkeypatch.setenv(CPU_PROFILE_ENV, "zen4")
    monkeypatch.setenv(WITHOUT_ENV, "nncf")
    caps = capabilities.detect()
    assert caps.profile == "zen4" and caps.cpu_class == "AVX-512+VNNI+BF16" and not caps.has("nncf")
    assert not installed("nncf")  # without a full detection: what the scripts ask for every step


@pytest.mark.parametrize("variable, value, fragment", [
    (CPU_PROFILE_ENV, "skylake", "expected a CPU profile among pre_avx2, avx2"),
    (WITHOUT_ENV, "openvno", "expected names among"),
])
def test_unknown_fake_names_are_refused(monkeypatch, variable, value, fragment):
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError, match=f"{variable}: {fragment}"):
        capabilities.detect()
    monkeypatch.delenv(variable)
    with pytest.raises(UsageError, match="expected"):
        with faked(profile=value) if variable == CPU_PROFILE_ENV else faked(without=value):
            pass


def test_this_machine_is_read():
    caps = capabilities.detect()
    assert caps.logical_cpus >= caps.physical_cores >= 1 and caps.flags <= set(capabilities.FLAGS)
    assert "onnxruntime" in caps.packages and "CPUExecutionProvider" in caps.ort_providers
    from tinybert.machine import describe_machine, physical_cores

    assert physical_cores() == current().physical_cores
    assert describe_machine()["cpu_features"] == current().describe()


@pytest.mark.slow
def test_openvino_bf16_follows_the_profile(small_onnx_bs4):
    """Refused on an AVX2 profile, allowed on AMX (on a CPU without bf16 OpenVINO then runs f32)."""
    pytest.importorskip("openvino")
    from tinybert.runtimes import open_runtime

    with faked(profile="avx2"):
        with pytest.raises(BackendUnavailableError, match="bf16: expected a CPU with native bf16 .* got AVX2"):
            open_runtime("openvino-bf16", str(small_onnx_bs4))
    with faked(profile="amx"):
        backend = open_runtime("openvino-bf16", str(small_onnx_bs4), threads=1)
        assert backend.precision == "bf16"
        ids = np.full((4, 64), 101, dtype=np.int64)
        logits = backend.run(ids, np.zeros_like(ids), np.ones_like(ids))
        assert logits.shape == (4, 2) and np.isfinite(logits).all()



def test_a_faked_kernel_outcome_decides_the_need_whatever_this_cpu_does():
    from tinybert.registry import need_checks
    from tinybert.runtimes.needs import check_outcome, unmet

    check = need_checks()["torchao_int8"]
    with faked(kernels={"torchao_int8": "off by 30% here"}):
        assert current().faked_kernel("torchao_int8") == (True, "off by 30% here")
        assert check_outcome(check) == "off by 30% here"
        assert not current().has("torchao") or unmet("torchao") == "off by 30% here"
        with faked(profile="amx", kernels={"torchao_int8": None}):  # nested: the inner outcome wins
            assert check_outcome(check) is None and (not current().has("torchao") or unmet("torchao") is None)
        assert check_outcome(check) == "off by 30% here"
    with pytest.raises(UsageError, match="faked.kernels=....: expected names among torchao_int8, got onednn"):
        with faked(kernels={"onednn": None}):
            pass
    assert not capabilities.fake._faked

@pytest.mark.slow
def test_torchao_that_fails_here_is_an_unmet_need_with_its_reason(monkeypatch):
    pytest.importorskip("torchao")
    import torchao.quantization

    from tinybert.runtimes import torch_peer
    from tinybert.runtimes.needs import unmet

    eager, compiled = torch_peer.torchao_int8_errors()
    here = torch_peer.torchao_int8_fails()
    assert eager <= torch_peer.TORCHAO_MAX_ERROR  # int8 rounding alone, on every CPU
    assert (here is None) == (compiled <= torch_peer.TORCHAO_MAX_ERROR)
    for measured, verdict in (((0.01, 0.2), "under torch.compile with frozen weights is off by 20.0%"),
                              ((0.01, 0.02), None), ((0.01, float("inf")), "gives non-finite output")):
        monkeypatch.setattr(torch_peer, "torchao_int8_errors", lambda measured=measured: measured)
        found = torch_peer.torchao_int8_fails.__wrapped__()
        assert found is None if verdict is None else verdict in found
    monkeypatch.undo()

    def refuse(*args, **kwargs):
        raise NotImplementedError("no int8 kernel for this CPU\nsecond line")

    monkeypatch.setattr(torchao.quantization, "quantize_", refuse)
    assert torch_peer.torchao_int8_fails.__wrapped__() == \
        "torchao is installed but its int8 quantization fails here: NotImplementedError: no int8 kernel for this CPU"
    with faked(without=("torchao",)):
        assert unmet("torchao").startswith("torchao is not installed (treated as not installed here)")


@pytest.mark.slow
def test_a_model_load_is_quiet_where_torchao_is_installed(small_inputs):
    """transformers imports torchao, whose import logs lines that say nothing about this pipeline."""
    import subprocess
    import sys

    code = ("import sys; from tinybert.model.modeling import load_tinybert; load_tinybert(sys.argv[1]); "
            "print('torchao' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(small_inputs.checkpoint)], capture_output=True, text=True,
                          cwd=capabilities.__file__.rsplit("/tinybert/", 1)[0], check=True)
    assert proc.stderr == "" and proc.stdout == f"{installed('torchao')}\n"


def test_an_unknown_need_is_named():
    from tinybert.capabilities import current

    assert current().unmet("warp_drive") == "unknown need 'warp_drive'"
