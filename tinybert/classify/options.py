"""classify's options as one table: each field of ClassifyOptions carries its command-line option, help and the setting
test/classify.sh passes, so the step's parser, the script's arguments and the options all come from it."""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields

from tinybert.classify.corpus import FORMATS, NO_LABELS
from tinybert.settings import (ACTOR_CPUS, CALL_TOKENS, CHUNK_SENTENCES, CLASSIFY_BATCH, ENGINES, GPU_CLASSIFY_BATCH,
                               SEQ_LEN, TOKENIZE_AHEAD, default)

SHELL_ARRAY = "classify_settings"  # the bash array `shell_arguments` fills for test/classify.sh


def option(default=MISSING, *, factory=MISSING, help: str | None = None, flag: str | None = None,
           setting: str | None = None, when: str | None = None, type: str | None = None,
           choices: tuple[str, ...] | None = None, cli_default=MISSING, switch: bool = False) -> Field:
    """A field and its row: `flag` (default --<field>; no dashes: positional), the `setting` classify.sh passes (only
    where shell variable `when` is non-empty), a cli `type` by name, `cli_default`; a `switch` flips the default."""
    metadata = {"help": help, "flag": flag, "setting": setting, "when": when, "type": type, "choices": choices,
                "cli_default": cli_default, "switch": switch}
    return field(default=default, default_factory=factory, metadata=metadata)


def _setting(name: str, script: str | None = None):
    return lambda: default(name, script)


@dataclass
class ClassifyOptions:
    input_path: str = option(flag="input", help="a TSV (SST-2 layout: a 'sentence' column, 'label' and GLUE "
                                                "'index' when present) or plain text, one sentence per line")
    output: str | None = option(None, help="the TSV to write (default: ./<input name>.classified.tsv)")
    format: str = option("auto", choices=FORMATS,
                         help="auto: TSV for a .tsv name, a --column, or a header with a 'sentence' column; else text")
    column: str | None = option(None, help="the sentence column of a TSV, by header name or 0-based index")
    label_column: str | None = option(None, help=f"the 0/1 label column, by name or index (default: 'label' when "
                                                 f"present; {NO_LABELS}: no labels)")
    with_sentence: bool = option(False, switch=True, help="add the sentence as a last column")
    overwrite: bool = option(False, switch=True, help="replace an existing output file")
    restart: bool = option(False, switch=True, help="discard an unfinished run of this output (made with other "
                                                    "input or settings) and start over")
    ckpt_dir: str = option(factory=_setting("CKPT_DIR"), setting="CKPT_DIR",
                           help="CKPT_DIR: vocab.txt, and the weights to export from")
    vocab_file: str | None = option(None, help="WordPiece vocabulary (default: <ckpt_dir>/vocab.txt)")
    model_dir: str = option(factory=_setting("MODEL_DIR"), setting="MODEL_DIR",
                            help="MODEL_DIR: where the .onnx files are")
    ort_model: str = option(factory=_setting("ORT_MODEL", "classify.sh"), setting="ORT_MODEL",
                            help="ORT_MODEL: the CPU path (auto: the fastest whose gate passed at export on this "
                                 "CPU class)")
    # The library runs the CPU path unless told; the command line, like the script, lets BACKEND=auto choose.
    backend: str = option("onnxruntime", cli_default=_setting("BACKEND"), setting="BACKEND",
                          help="BACKEND: auto (a CUDA GPU torch can use, else the CPU), gpu or onnxruntime "
                               "(ORT_MODEL's path)")
    gpu_model: str = option(factory=_setting("GPU_MODEL", "classify.sh"), setting="GPU_MODEL",
                            help="GPU_MODEL: the GPU path (auto: the fastest whose gate passed on this GPU, checked "
                                 "first)")
    device: int | None = option(None, type="non_negative_int", setting="DEVICE",
                                help="DEVICE: the CUDA GPU (local engine)")
    calibration_file: str | None = option(None, setting="CALIB_FILE",
                                          help="CALIB_FILE: training TSV to calibrate ORT_MODEL=int8_static when its "
                                               "model is missing")
    features_dir: str | None = option(None, flag="--bin_dir", setting="BIN_DIR",
                                      help="BIN_DIR: preprocessed features auto's gates are judged on where their "
                                           "records were judged on less (labelled: the dev set); none or missing: "
                                           "the records as they are, else generated sentences")
    seq_len: int = option(SEQ_LEN, flag="--max_seq_length", type="positive_int", setting="SEQ_LEN")
    # None: CLASSIFY_BATCH's default, or gpu_batch_size on a GPU; the script passes it only where it was set.
    batch_size: int | None = option(None, type="positive_int", setting="CLASSIFY_BATCH", when="batch_given",
                                    help=f"CLASSIFY_BATCH; none given: {CLASSIFY_BATCH}, or --gpu_batch_size on a GPU")
    gpu_batch_size: int = option(GPU_CLASSIFY_BATCH, type="positive_int", setting="GPU_CLASSIFY_BATCH",
                                 help="GPU_CLASSIFY_BATCH: the batch size on a GPU where --batch_size is not given")
    bucket_edges: str = option(factory=_setting("BUCKET_EDGES"), setting="BUCKET_EDGES",
                               help="BUCKET_EDGES: 'tight', edges such as '16,32,48,64', or 'off'")
    call_tokens: int = option(CALL_TOKENS, type="non_negative_int", setting="CALL_TOKENS",
                              help="CALL_TOKENS: each batch runs as calls of at most this many positions; 0: one call "
                                   "per batch")
    chunk_sentences: int = option(CHUNK_SENTENCES, type="positive_int", setting="CHUNK_SENTENCES",
                                  help="CHUNK_SENTENCES: input lines per chunk (the unit of resuming and of Ray's "
                                       "work)")
    engine: str = option(factory=_setting("ENGINE"), choices=ENGINES, setting="ENGINE",
                         help="ENGINE: this machine, or Ray Data")
    threads: int | None = option(None, type="positive_int",
                                 help="local: threads in all (default: physical cores), shared among the requests in "
                                      "flight")
    requests: str | None = option(None, setting="REQUESTS", help=f"REQUESTS: calls in flight per model session "
                                                                 f"(default: {default('REQUESTS')})")
    actor_cpus: int = option(ACTOR_CPUS, type="positive_int", setting="ACTOR_CPUS",
                             help="ACTOR_CPUS: CPUs, and threads, of each Ray actor (one model session each)")
    actors: int | None = option(None, type="positive_int",
                                help="Ray actors (default: the cluster's CPUs / --actor_cpus)")
    ray_cpus: int | None = option(None, type="positive_int",
                                  help="CPUs of the local Ray cluster started when RAY_ADDRESS is unset (default: "
                                       "this machine's)")
    tokenize_workers: str = option(factory=_setting("TOKENIZE_WORKERS"), setting="TOKENIZE_WORKERS",
                                   help="TOKENIZE_WORKERS: a GPU path's tokenizing, ahead of the model: auto, the "
                                        "tokenizer's own threads in this process; N, N processes (ENGINE=ray: Ray's "
                                        "CPU tasks)")
    tokenize_ahead: int = option(TOKENIZE_AHEAD, type="positive_int", setting="TOKENIZE_AHEAD",
                                 help="TOKENIZE_AHEAD: chunks tokenized ahead of the one the GPU runs")
    progress: bool = option(True, flag="--no_progress", switch=True)


def rows() -> tuple[Field, ...]:
    """The table: one row per option, in the command line's order."""
    return fields(ClassifyOptions)


def flag(row: Field) -> str:
    return row.metadata["flag"] or f"--{row.name}"


def cli_default(row: Field):
    """The command line's default of a row: its own where it has one, else the library's."""
    chosen = row.metadata["cli_default"]
    if chosen is MISSING:
        chosen = row.default_factory if row.default is MISSING else row.default
    return chosen() if callable(chosen) else chosen


def from_namespace(namespace) -> ClassifyOptions:
    """The options of a parsed command line whose destinations are the fields' names (the classify step's parser)."""
    return ClassifyOptions(**{row.name: getattr(namespace, row.name) for row in rows()})


def settings_passed() -> tuple[str, ...]:
    """The settings test/classify.sh passes to the step."""
    return tuple(row.metadata["setting"] for row in rows() if row.metadata["setting"])


def shell_arguments() -> str:
    """A line for classify.sh's eval: the bash array SHELL_ARRAY of each row's option and its setting's variable,
    a row with `when` only where that variable is non-empty."""
    words = []
    for row in rows():
        name, when = row.metadata["setting"], row.metadata["when"]
        if name:
            pair = f'{flag(row)} "${name}"'
            words.append(f"${{{when}:+{pair}}}" if when else pair)
    return f"{SHELL_ARRAY}=({' '.join(words)})\n"
