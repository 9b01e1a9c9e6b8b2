"""The registry (tinybert/registry.py) as the Markdown tables the docs show (`python -m tinybert
registry`: docs/cpu-paths.md, docs/architecture.md; a test keeps the files equal to them)."""

from __future__ import annotations

from tinybert.bench.rows import rows
from tinybert.registry import AUTO_ORDERS, BACKENDS, CHECKPOINT, GPU_AUTO_ORDER, GPU_AUTO_WHY, RUNTIMES, Role
from tinybert.model_kinds import kind as model_kind

GATES = {"exact": "与 PyTorch logits 差 ≤ 1e-4", "reduced": "dev 上精度差 ≤ 0.3 个百分点、与 PyTorch 一致率 ≥ 99%",
         None: "-"}
ROLES = {Role.CARD: "模型卡的路径（ORT_MODEL）", Role.PROJECT: "本仓库路径（ORT_MODEL）", Role.VARIANT: "本仓库路径的变体",
         Role.BASELINE: "基准", Role.PEER: "对照", Role.GPU_PROJECT: "本仓库 GPU 路径（GPU_MODEL）",
         Role.ORT_GPU: "GPU 对照（ONNX Runtime）", Role.GPU_BASELINE: "GPU 基准（PyTorch eager）", Role.GPU_PEER: "GPU 对照（PyTorch）"}


def _model(kind: str) -> str:
    return "检查点目录" if kind == CHECKPOINT else f"`{model_kind(kind).file.format(bs='${bs}')}`"


def backends_markdown() -> str:
    lines = ["| BACKEND | 运行什么 | LOOP 默认 | auto 可选 |", "| ---- | ---- | ---- | ---- |"]
    for b in BACKENDS:
        name = f"`{b.name}`" if b.choosable else f"（`{b.name}`，perf_gpu.sh）"
        lines.append(f"| {name} | {b.title} | {b.loop} | {'是' if b.auto else '否'} |")
    return "\n".join(lines) + "\n"


def paths_markdown() -> str:
    lines = ["| 行 | 名称 | 角色 | 运行时 | 模型 | 精度 | 门限 | 需要 | 说明 |",
             "| ---- | ---- | ---- | ---- | ---- | ---- | ---- | ---- | ---- |"]
    for p in rows():
        needs = ", ".join(p.all_needs) or "-"
        text = p.title + (f"；{p.why}" if p.why else "")
        lines.append(f"| {p.row} | `{p.name}` | {ROLES[p.role]} | `{p.runtime}` | {_model(p.model)} | {p.precision} | "
                     f"{GATES[p.gate]} | {needs} | {text} |")
    return "\n".join(lines) + "\n"


def runtimes_markdown() -> str:
    lines = ["| 运行时 | 是什么 | 类 | 安装 |", "| ---- | ---- | ---- | ---- |"]
    for r in RUNTIMES:
        source = r.module.removeprefix("tinybert.").replace(".", "/") + ".py"
        lines.append(f"| `{r.name}` | {r.title} | `{source}` `{r.cls}` | `{r.install}` |")
    return "\n".join(lines) + "\n"


def auto_markdown() -> str:
    lines = ["| CPU 类 | ORT_MODEL=auto 依次尝试 | 理由 |", "| ---- | ---- | ---- |"]
    for entry in AUTO_ORDERS:
        classes = ", ".join(f"`{c}`" for c in entry.cpu_classes) or "其他"
        lines.append(f"| {classes} | {' → '.join(f'`{p}`' for p in entry.paths)} | {entry.why} |")
    lines.append(f"| CUDA GPU（GPU_MODEL=auto，门限记录按 GPU 名） | {' → '.join(f'`{p}`' for p in GPU_AUTO_ORDER)} | "
                 f"{GPU_AUTO_WHY} |")
    return "\n".join(lines) + "\n"


TABLES = {"auto": auto_markdown, "backends": backends_markdown, "paths": paths_markdown, "runtimes": runtimes_markdown}
