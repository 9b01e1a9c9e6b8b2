"""Command-line front end: one parser per step, each calling one library function; expected mistakes
(PipelineError) print as `[ERROR] ...` and exit non-zero, and Ctrl-C or SIGTERM leave no partial output."""

from __future__ import annotations

import signal
import sys

from tinybert.cli import classify, classify_check, gpu_check, loadgen, model_steps, pipeline, roofline, serve, settings
from tinybert.errors import PipelineError
from tinybert.machine import use_compile_cache

STEPS = {**pipeline.STEPS, **classify.STEPS, **roofline.STEPS, **model_steps.STEPS, **gpu_check.STEPS,
         **classify_check.STEPS, **serve.STEPS, **settings.STEPS, **loadgen.STEPS}


class Terminated(BaseException):
    """SIGTERM, turned into an exception so cleanup code runs."""


def _on_sigterm(signum, frame):
    raise Terminated()


def run(name: str, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run one step; returns the process exit code."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    func = STEPS[name][0]
    try:
        func(sys.argv[1:] if argv is None else argv, prog)
    except PipelineError as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # Disk full, read-only or vanished paths not already named by a step: still one clear line.
        print(f"[ERROR] {exc.filename or 'I/O'}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("[ERROR] interrupted; no partial results were kept", file=sys.stderr)
        return 130
    except Terminated:
        print("[ERROR] terminated; no partial results were kept", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def main(argv: list[str] | None = None) -> int:
    """The program: the compile cache decided before any step can compile (machine.use_compile_cache), then the step."""
    use_compile_cache()
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in STEPS:
        print("usage: python -m tinybert <step> [options]   (each step has --help)\n\nsteps:")
        for name, (_, help_text) in STEPS.items():
            print(f"  {name:<13} {help_text}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return run(argv[0], argv[1:])
