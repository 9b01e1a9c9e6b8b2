"""`python -m tinybert classify-check` (test/classify_gpu_check.sh): its command line; the check itself is
checks/classify_check.py."""

from __future__ import annotations

from tinybert.cli.parsers import DEFAULTS, StepTable, non_negative_int, positive_int
from tinybert.settings import CHECK_SENTENCES, CHECK_TARGET, CHUNK_SENTENCES, GPU_CLASSIFY_BATCH, default

STEPS = StepTable()
step = STEPS.step


@step("classify-check", "measure classify on a GPU end to end against the tokenizer alone (a TSV repeated to N "
                        "sentences) and compare its labels with the fp32 path's")
def _classify_check(argv, prog):
    p = STEPS.parser("classify-check", prog)
    p.add_argument("source", help="a TSV with a header line (e.g. SST-2's train.tsv), repeated into the corpus")
    p.add_argument("--sentences", type=positive_int, default=CHECK_SENTENCES,
                   help="CHECK_SENTENCES: the corpus's sentences at least")
    p.add_argument("--work_dir", default="./classify_check", help="the corpus, the outputs and the JSON")
    p.add_argument("--ckpt_dir", default=DEFAULTS["CKPT_DIR"], help="CKPT_DIR: the checkpoint and its vocab.txt")
    p.add_argument("--model_dir", default=DEFAULTS["MODEL_DIR"], help="MODEL_DIR: GPU_MODEL=auto's gate records")
    p.add_argument("--gpu_model", default=default("GPU_MODEL", "classify.sh"), help="GPU_MODEL: the path measured")
    p.add_argument("--device", type=non_negative_int, default=None, help="DEVICE: the CUDA GPU")
    p.add_argument("--batch_size", type=positive_int, default=GPU_CLASSIFY_BATCH, help="GPU_CLASSIFY_BATCH")
    p.add_argument("--chunk_sentences", type=positive_int, default=CHUNK_SENTENCES, help="CHUNK_SENTENCES")
    p.add_argument("--tokenize_workers", default=DEFAULTS["TOKENIZE_WORKERS"],
                   help="TOKENIZE_WORKERS: classify's tokenizing route (both routes are measured alone)")
    p.add_argument("--target", type=float, default=CHECK_TARGET,
                   help="CHECK_TARGET: the least classify / tokenizer-alone rate")
    p.add_argument("--json_out", default=None, help="the record as JSON (default: <work_dir>/classify_check.json)")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    from tinybert.checks.classify_check import run_classify_check

    run_classify_check(source=a.source, sentences=a.sentences, work_dir=a.work_dir, ckpt_dir=a.ckpt_dir,
                       model_dir=a.model_dir, gpu_model=a.gpu_model, device=a.device, batch_size=a.batch_size,
                       chunk_sentences=a.chunk_sentences, tokenize_workers=a.tokenize_workers, target=a.target,
                       json_out=a.json_out, progress=not a.no_progress)
