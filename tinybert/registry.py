"""What each backend and each CPU path is, in one table (work in progress: the interface below is
stable; the tables behind it move here from settings.py, backend_choice.py and backends/).

- `model_file(path, model_dir, batch_size)`: the model file a CPU path (an ORT_MODEL value) runs.
- `open_path(path, model_dir, threads, requests, batch_size)`: that model, opened on the path's
  runtime with its options: an object with `run(input_ids, segment_ids, input_mask) -> logits`,
  `batch_size`, `seq_len` and `requests` (calls to keep in flight).

Standard library only at import.
"""

from __future__ import annotations

from .settings import CPU_RUNTIMES, ORT_MODELS, model_path


def model_file(path: str, model_dir: str = ".", batch_size: int | None = None) -> str:
    from .backend_choice import Request, ort_model

    return ort_model(Request(model_dir=model_dir, ort_model=path), batch_size)


def open_path(path: str, model_dir: str = ".", threads: int | None = None, requests: int | str | None = None,
              batch_size: int | None = None):
    from .backend_choice import cpu_runtime
    from .backends import create_backend

    runtime = cpu_runtime(path)
    options = {"threads": threads}
    if requests is not None:
        options["requests"] = requests
    return create_backend(runtime, model_file(path, model_dir, batch_size), **options)


__all__ = ["model_file", "open_path", "ORT_MODELS", "CPU_RUNTIMES", "model_path"]
