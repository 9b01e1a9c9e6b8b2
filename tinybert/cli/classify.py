"""The classify step's command line (test/classify.sh): a corpus of any size in, one TSV out; its options are
classify/options.py's table, one per ClassifyOptions field."""

from __future__ import annotations

from tinybert.cli.parsers import StepTable, non_negative_int, positive_int

TYPES = {"positive_int": positive_int, "non_negative_int": non_negative_int}

STEPS = StepTable()
step = STEPS.step


def add_options(p) -> None:
    """One argument per row of the table, its destination the field's name."""
    from tinybert.classify.options import cli_default, flag, rows

    for row in rows():
        meta, name = row.metadata, flag(row)
        if not name.startswith("-"):
            p.add_argument(row.name, metavar=name, help=meta["help"])
            continue
        kwargs = {"dest": row.name, "help": meta["help"]}
        if meta["switch"]:
            kwargs["action"] = "store_false" if cli_default(row) else "store_true"
        else:
            kwargs["default"] = cli_default(row)
            if meta["type"]:
                kwargs["type"] = TYPES[meta["type"]]
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if name.lstrip("-") != row.name:
                kwargs["metavar"] = name.lstrip("-").upper()
        p.add_argument(name, **kwargs)


@step("classify", "classify a TSV or text corpus of any size into one TSV (index, label, probabilities): "
                  "streaming, resumable, on this machine or on Ray")
def _classify(argv, prog):
    p = STEPS.parser("classify", prog)
    add_options(p)
    a = p.parse_args(argv)
    from tinybert.classify.options import from_namespace
    from tinybert.classify.pipeline import classify_corpus

    classify_corpus(from_namespace(a))
