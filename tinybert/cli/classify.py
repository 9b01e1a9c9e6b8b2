"""The classify step's command line (test/classify.sh): a corpus of any size in, one TSV out."""

from __future__ import annotations

from tinybert.settings import (ACTOR_CPUS, CALL_TOKENS, CHUNK_SENTENCES, CLASSIFY_BATCH, ENGINES, GPU_CLASSIFY_BATCH,
                               SEQ_LEN, default)
from tinybert.cli.parsers import DEFAULTS, StepTable, non_negative_int, positive_int


def _input_options(p) -> None:
    from tinybert.classify.corpus import FORMATS, NO_LABELS

    p.add_argument("input", help="a TSV (SST-2 layout: a 'sentence' column, 'label' and GLUE 'index' when present) "
                                 "or plain text, one sentence per line")
    p.add_argument("--output", default=None, help="the TSV to write (default: ./<input name>.classified.tsv)")
    p.add_argument("--format", default="auto", choices=FORMATS,
                   help="auto: TSV for a .tsv name, a --column, or a header with a 'sentence' column; else text")
    p.add_argument("--column", default=None, help="the sentence column of a TSV, by header name or 0-based index")
    p.add_argument("--label_column", default=None,
                   help=f"the 0/1 label column, by name or index (default: 'label' when present; {NO_LABELS}: no labels)")
    p.add_argument("--with_sentence", action="store_true", help="add the sentence as a last column")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--restart", action="store_true",
                   help="discard an unfinished run of this output (made with other input or settings) and start over")


def _model_options(p) -> None:
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: vocab.txt, and the weights to export from")
    p.add_argument("--vocab_file", default=None, help="WordPiece vocabulary (default: <ckpt_dir>/vocab.txt)")
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR: where the .onnx files are")
    p.add_argument("--ort_model", default=default("ORT_MODEL", "classify.sh"),
                   help="ORT_MODEL: the CPU path (auto: the fastest whose gate passed at export on this CPU class)")
    p.add_argument("--backend", default=DEFAULTS["BACKEND"],
                   help="BACKEND: auto (a CUDA GPU torch can use, else the CPU), gpu or onnxruntime (ORT_MODEL's path)")
    p.add_argument("--gpu_model", default=default("GPU_MODEL", "classify.sh"),
                   help="GPU_MODEL: the GPU path (auto: the fastest whose gate passed on this GPU, checked first)")
    p.add_argument("--device", type=non_negative_int, default=None, help="DEVICE: the CUDA GPU (local engine)")
    p.add_argument("--calibration_file", default=None,
                   help="CALIB_FILE: training TSV to calibrate ORT_MODEL=int8_static when its model is missing")
    p.add_argument("--max_seq_length", type=positive_int, default=SEQ_LEN)
    p.add_argument("--batch_size", type=positive_int, default=None,
                   help=f"CLASSIFY_BATCH; none given: {CLASSIFY_BATCH}, or --gpu_batch_size on a GPU")
    p.add_argument("--gpu_batch_size", type=positive_int, default=GPU_CLASSIFY_BATCH,
                   help="GPU_CLASSIFY_BATCH: the batch size on a GPU where --batch_size is not given")
    p.add_argument("--bucket_edges", default=DEFAULTS["BUCKET_EDGES"],
                   help="BUCKET_EDGES: 'tight', edges such as '16,32,48,64', or 'off'")
    p.add_argument("--call_tokens", type=non_negative_int, default=CALL_TOKENS,
                   help="CALL_TOKENS: each batch runs as calls of at most this many positions; 0: one call per batch")
    p.add_argument("--chunk_sentences", type=positive_int, default=CHUNK_SENTENCES,
                   help="CHUNK_SENTENCES: input lines per chunk (the unit of resuming and of Ray's work)")


def _engine_options(p) -> None:
    p.add_argument("--engine", default=DEFAULTS["ENGINE"], choices=ENGINES, help="ENGINE: this machine, or Ray Data")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="local: threads in all (default: physical cores), shared among the requests in flight")
    p.add_argument("--requests", default=None, help=f"REQUESTS: calls in flight per model session "
                                                    f"(default: {DEFAULTS['REQUESTS']})")
    p.add_argument("--actor_cpus", type=positive_int, default=ACTOR_CPUS,
                   help="ACTOR_CPUS: CPUs, and threads, of each Ray actor (one model session each)")
    p.add_argument("--actors", type=positive_int, default=None,
                   help="Ray actors (default: the cluster's CPUs / --actor_cpus)")
    p.add_argument("--ray_cpus", type=positive_int, default=None,
                   help="CPUs of the local Ray cluster started when RAY_ADDRESS is unset (default: this machine's)")
    p.add_argument("--tokenize_workers", default=DEFAULTS["TOKENIZE_WORKERS"],
                   help="TOKENIZE_WORKERS: a GPU path's tokenizing, ahead of the model: auto, the tokenizer's own "
                        "threads in this process; N, N processes (ENGINE=ray: Ray's CPU tasks)")
    p.add_argument("--no_progress", action="store_true")


STEPS = StepTable()
step = STEPS.step


@step("classify", "classify a TSV or text corpus of any size into one TSV (index, label, probabilities): "
                  "streaming, resumable, on this machine or on Ray")
def _classify(argv, prog):
    p = STEPS.parser("classify", prog)
    _input_options(p)
    _model_options(p)
    _engine_options(p)
    a = p.parse_args(argv)
    from tinybert.classify.pipeline import ClassifyOptions, classify_corpus

    classify_corpus(ClassifyOptions(
        input_path=a.input, output=a.output, format=a.format, column=a.column, label_column=a.label_column,
        with_sentence=a.with_sentence, overwrite=a.overwrite, restart=a.restart, ckpt_dir=a.ckpt_dir,
        model_dir=a.model_dir, ort_model=a.ort_model, backend=a.backend, gpu_model=a.gpu_model, device=a.device,
        vocab_file=a.vocab_file, seq_len=a.max_seq_length,
        batch_size=a.batch_size, gpu_batch_size=a.gpu_batch_size, bucket_edges=a.bucket_edges,
        call_tokens=a.call_tokens, tokenize_workers=a.tokenize_workers,
        chunk_sentences=a.chunk_sentences, engine=a.engine, threads=a.threads, requests=a.requests,
        actor_cpus=a.actor_cpus, actors=a.actors, ray_cpus=a.ray_cpus, calibration_file=a.calibration_file,
        progress=not a.no_progress))
