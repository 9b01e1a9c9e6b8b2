"""The process-wide state a test could leave changed for the tests after it in the same worker: torch's Dynamo and
Inductor configs, its thread count, float32 matmul precision, grad mode and default dtype, the environment, the
working directory, the signal handlers the steps install and the capabilities fakes. conftest's autouse guard
snapshots it around every test; a test that leaves any of it changed fails naming each part, and the state is put
back so the tests after it run as they would alone."""

from __future__ import annotations

import os
import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Written by pytest and by libraries for their own use (Inductor's private variables as it compiles), never read by
# the project: not the test's doing.
ENV_WRITTEN_BY_LIBRARIES = frozenset({"KMP_DUPLICATE_LIB_OK", "KMP_INIT_AT_FORK", "PYTEST_CURRENT_TEST"})
ENV_PREFIXES_OF_LIBRARIES = ("_TORCHINDUCTOR_",)


def _own(key: str) -> bool:
    return key not in ENV_WRITTEN_BY_LIBRARIES and not key.startswith(ENV_PREFIXES_OF_LIBRARIES)


def _config_modules():
    import torch._dynamo.config as dynamo
    import torch._inductor.config as inductor

    return {"torch._dynamo.config": dynamo, "torch._inductor.config": inductor}


def _config_state(module) -> dict:
    """Each entry's value as the module answers it (torch's own export, cached), and which entries are hidden (what
    a delattr, such as monkeypatch's undo, leaves)."""
    hidden = {name for name, entry in module._config.items() if entry.hide}
    return {"values": dict(module._get_dict(readonly_values=True)), "hidden": hidden}


def snapshot() -> dict:
    import torch

    from tinybert import capabilities

    return {
        "configs": {name: _config_state(module) for name, module in _config_modules().items()},
        "threads": torch.get_num_threads(),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "grad": torch.is_grad_enabled(),
        "dtype": torch.get_default_dtype(),
        "env": {k: v for k, v in os.environ.items() if _own(k)},
        "cwd": os.getcwd(),
        "signals": {s: signal.getsignal(s) for s in SIGNALS},
        "fakes": list(capabilities.fake._faked),
    }


def changes(before: dict, after: dict) -> list[str]:
    """What differs, one line each, naming the part (and the keys) left changed."""
    found = []
    for name, old in before["configs"].items():
        new = after["configs"][name]
        for key in sorted(new["hidden"] - old["hidden"]):
            found.append(f"{name}.{key} deleted (hidden: every later torch.compile in this process fails; "
                         f"change torch configs through their own patch())")
        changed = sorted(k for k in old["values"].keys() & new["values"].keys()
                         if k not in new["hidden"] and old["values"][k] is not new["values"][k]
                         and old["values"][k] != new["values"][k])
        found += [f"{name}.{key}: {old['values'][key]!r} -> {new['values'][key]!r}" for key in changed]
    for key in ("threads", "matmul_precision", "grad", "dtype", "cwd"):
        if before[key] != after[key]:
            label = {"threads": "torch.get_num_threads()", "matmul_precision": "torch float32 matmul precision",
                     "grad": "torch grad mode", "dtype": "torch default dtype", "cwd": "working directory"}[key]
            found.append(f"{label}: {before[key]!r} -> {after[key]!r}")
    old_env, new_env = before["env"], after["env"]
    for key in sorted(old_env.keys() | new_env.keys()):
        if old_env.get(key) != new_env.get(key):
            found.append(f"os.environ[{key!r}]: {old_env.get(key)!r} -> {new_env.get(key)!r}")
    for sig, handler in before["signals"].items():
        if after["signals"][sig] != handler:
            found.append(f"signal handler of {signal.Signals(sig).name}: {handler!r} -> {after['signals'][sig]!r}")
    if before["fakes"] != after["fakes"]:
        found.append(f"capabilities fakes in force: {len(before['fakes'])} -> {len(after['fakes'])}")
    return found


def restore(before: dict) -> None:
    """Put back what `changes` would name, so the next test starts as it would alone."""
    import torch

    from tinybert import capabilities

    for name, module in _config_modules().items():
        old, now = before["configs"][name], _config_state(module)
        for key, value in old["values"].items():
            if key in now["hidden"] or now["values"].get(key) != value:
                setattr(module, key, value)  # torch's own setter: it also unhides the entry
    torch.set_num_threads(before["threads"])
    torch.set_float32_matmul_precision(before["matmul_precision"])
    torch.set_grad_enabled(before["grad"])
    torch.set_default_dtype(before["dtype"])
    for key in [k for k in os.environ if _own(k) and k not in before["env"]]:
        del os.environ[key]
    os.environ.update(before["env"])
    os.chdir(before["cwd"])
    for sig, handler in before["signals"].items():
        if handler is not None:
            signal.signal(sig, handler)
    capabilities.fake._faked[:] = before["fakes"]
