"""The steps the shell scripts ask for settings: defaults, model file names, the backend."""

from __future__ import annotations

import argparse
import sys

from tinybert.model_kinds import MODEL_KINDS, group
from tinybert.cli.parsers import DEFAULTS, StepTable, positive_int


def _print(text: str) -> None:
    """Text as UTF-8 whatever the locale (the Markdown table has Chinese headers)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


STEPS = StepTable()
step = STEPS.step


@step("settings", "the settings table: shell defaults for test/common.sh, a script's settings help, docs/settings.md's Markdown")
def _settings(argv, prog):
    p = STEPS.parser("settings", prog)
    form = p.add_mutually_exclusive_group()
    form.add_argument("--shell", action="store_true",
                      help="lines for eval: each setting, unless set and non-empty, becomes its default")
    form.add_argument("--markdown", action="store_true", help="the table with each default's reason (docs/settings.md)")
    form.add_argument("--get", metavar="NAME", default=None, help="print one setting's default")
    form.add_argument("--arguments", choices=("classify",), default=None,
                      help="a line for eval: the bash array classify_settings of the step's options from the "
                           "settings the script read (classify/options.py's table)")
    p.add_argument("--script", default=None,
                   help="only the settings this test/*.sh reads (the shared ones and its own), with its own "
                        "defaults; default: all")
    p.add_argument("--backend", default=None, help="with --get: the default on this backend (LOOP)")
    a = p.parse_args(argv)
    from tinybert.docs_tables import settings_text

    if a.shell:
        text = settings_text.shell_assignments(a.script)
    elif a.markdown:
        text = settings_text.markdown(a.script)
    elif a.arguments:
        from tinybert.classify.options import shell_arguments

        text = shell_arguments()
    elif a.get:
        text = settings_text.default_of(a.get, a.backend, a.script) + "\n"
    else:
        text = settings_text.help_text(a.script)
    _print(text)


def _model_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The settings that decide which model file a step uses."""
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR: where the .onnx and .om files are")
    p.add_argument("--ort_model", default=DEFAULTS["ORT_MODEL"],
                   help="ORT_MODEL: the ONNX Runtime model (auto: the one it chooses in --model_dir)")
    p.add_argument("--dynamic_dims", default=DEFAULTS["DYNAMIC_DIMS"],
                   help="DYNAMIC_DIMS: non-empty selects the Ascend gear model")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint BACKEND=gpu runs")
    return p


def _request(a, chip_name: str = ""):
    from tinybert.runtimes.route import Request

    return Request(a.model_dir, a.ort_model, a.dynamic_dims, chip_name, ckpt_dir=a.ckpt_dir)


FAST_MODEL_GROUP = "fast_models"


@step("paths", "model file names: one per kind, the model a backend runs, or the fast models")
def _paths(argv, prog):
    from tinybert.registry import AUTO, backend_names
    from tinybert.runtimes.route import backend_model
    from tinybert.settings import model_path

    backends = backend_names()
    p = STEPS.parser("paths", prog)
    p.add_argument("kind", nargs="+",
                   help=f"a model kind ({', '.join(k.name for k in MODEL_KINDS)}); a backend ({', '.join(backends)}): the "
                        f"model it runs under --ort_model/--dynamic_dims; {FAST_MODEL_GROUP}: "
                        f"{', '.join(k.name for k in group('fast'))}")
    p.add_argument("--batch_size", type=positive_int, default=None, help="for the models made per batch size")
    a = _model_options(p).parse_args(argv)
    request = _request(a)
    if a.ort_model == AUTO and any(kind in backends for kind in a.kind):
        from dataclasses import replace

        from tinybert.runtimes.route import resolve_ort_model

        request = replace(request, ort_model=resolve_ort_model(AUTO, a.model_dir).path)
    lines = []
    for kind in a.kind:
        if kind == FAST_MODEL_GROUP:
            lines += [model_path(k.name, a.model_dir, a.batch_size) for k in group("fast")]
        elif kind in backends:
            lines.append(backend_model(kind, request, a.batch_size))
        else:
            lines.append(model_path(kind, a.model_dir, a.batch_size))
    _print("".join(f"{line}\n" for line in lines))


@step("backend", "the inference backend for BACKEND (auto: ais_bench where it can run, else a CUDA GPU, else ONNX "
                 "Runtime); the name on stdout, why on stderr")
def _backend(argv, prog):
    from tinybert.runtimes.route import explain_backend

    p = STEPS.parser("backend", prog)
    p.add_argument("--requested", default=DEFAULTS["BACKEND"], help="BACKEND: auto or a backend name")
    p.add_argument("--batch_size", type=positive_int, nargs="+", required=True,
                   help="the batch sizes to run (each one's model must exist, unless it will be built)")
    p.add_argument("--chip_name", default="", help="CHIP_NAME: given, the step builds the OM models itself")
    a = _model_options(p).parse_args(argv)
    name, why = explain_backend(a.requested, a.batch_size, _request(a, a.chip_name))
    if a.requested == "auto":
        print(f"[INFO] BACKEND=auto -> {name} ({why})", file=sys.stderr)
    print(name)


@step("registry", "the registry as the docs' tables: BACKEND values, CPU paths and benchmark rows, runtimes, auto's order")
def _registry(argv, prog):
    from tinybert.docs_tables.registry_text import TABLES

    p = STEPS.parser("registry", prog)
    p.add_argument("table", nargs="?", choices=sorted(TABLES), default=None, help="one table (default: all of them)")
    a = p.parse_args(argv)
    names = [a.table] if a.table else list(TABLES)
    _print("\n".join(TABLES[name]() for name in names))


@step("modules", "the package's modules (or the test files) as docs/architecture.md's (docs/testing.md's) table")
def _modules(argv, prog):
    from tinybert.docs_tables import modules_text

    p = STEPS.parser("modules", prog)
    p.add_argument("which", nargs="?", choices=sorted(modules_text.FOLDERS), default="package",
                   help="package: tinybert/ (docs/architecture.md); tests: tests/ (docs/testing.md)")
    a = p.parse_args(argv)
    _print(modules_text.markdown(a.which))
