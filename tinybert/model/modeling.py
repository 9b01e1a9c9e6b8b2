"""The TinyBERT SST-2 classifier on transformers' BERT modules, with the original TinyBERT numerics (erf GELU,
additive mask, a relu before the classifier, which BertForSequenceClassification lacks), and checkpoint loading."""

from __future__ import annotations

import contextlib
import json
import os
import pickle

from tinybert import NUM_LABELS
from tinybert.capabilities import quiet_torchao
from tinybert.errors import CheckpointError, expect

CONFIG_NAMES = ("config.json", "bert_config.json")
WEIGHTS_NAME = "pytorch_model.bin"
VOCAB_NAME = "vocab.txt"
REQUIRED_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                        "intermediate_size", "max_position_embeddings", "type_vocab_size")
IGNORED_PREFIXES = ("fit_dense.",)  # distillation-only projection, unused at inference
MASK_FILL = -10000.0
ATTENTION_NAME = "tinybert"  # registered with transformers' AttentionInterface


def vocab_path(model_dir: str) -> str:
    """The checkpoint's WordPiece vocabulary."""
    return os.path.join(model_dir, VOCAB_NAME)


def weights_path(model_dir: str) -> str:
    return os.path.join(model_dir, WEIGHTS_NAME)


def find_config(model_dir: str) -> str:
    expect(os.path.isdir(model_dir), CheckpointError,
           f"{model_dir}: expected a TinyBERT checkpoint folder ({CONFIG_NAMES[0]}, {WEIGHTS_NAME}, {VOCAB_NAME}), "
           "found no such folder")
    for name in CONFIG_NAMES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    raise CheckpointError(f"{model_dir}: expected {' or '.join(CONFIG_NAMES)}, found neither "
                          f"(folder has: {', '.join(sorted(os.listdir(model_dir))) or 'nothing'})")


def load_bert_config(model_dir: str):
    """A transformers BertConfig from a TinyBERT config file (extra TinyBERT keys are ignored)."""
    quiet_torchao()  # transformers' model classes import torchao where it is installed
    from transformers import BertConfig

    path = find_config(model_dir)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: expected a JSON BERT config, got unparsable content ({exc})") from None
    missing = [key for key in REQUIRED_CONFIG_KEYS if key not in raw]
    expect(not missing, CheckpointError, f"{path}: expected BERT keys {', '.join(missing)}, not found")
    hidden_act = raw.get("hidden_act", "gelu")
    expect(hidden_act == "gelu", CheckpointError,
           f"{path}: expected hidden_act 'gelu' (exact erf GELU, as TinyBERT), got {hidden_act!r}")
    config = BertConfig(**{key: raw[key] for key in REQUIRED_CONFIG_KEYS}, hidden_act="gelu",
                        layer_norm_eps=1e-12, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    # Not SDPA: it has no opset-11 export and defeats ONNX Runtime's attention fusion.
    _register_attention()
    config._attn_implementation = ATTENTION_NAME
    return config


def _tinybert_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention as the original TinyBERT computes it: scores divided by sqrt(head size) (transformers' multiply
    by the inverse hides the mask from ONNX Runtime's attention fusion), plus the additive mask, softmax."""
    import math

    import torch

    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(query.size(-1))
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), probs


def _register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _tinybert_attention)


def _build_classifier_class():
    import torch
    from torch import nn

    quiet_torchao()
    from transformers.models.bert.modeling_bert import BertEmbeddings, BertEncoder, BertPooler

    class TinyBertBody(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.embeddings = BertEmbeddings(config)
            self.encoder = BertEncoder(config)
            self.pooler = BertPooler(config)

            self.cls_only_last_layer = False  # see cls_only_last_layer()

        def forward(self, input_ids, segment_ids, input_mask):
            # The original's additive mask as unsqueeze/unsqueeze/cast/sub/mul, the chain ONNX Runtime's attention
            # fusion recognises; cast to the weights' dtype, so a half-precision model adds it to scores of its own.
            compute = self.embeddings.word_embeddings.weight.dtype
            mask = input_mask.unsqueeze(1).unsqueeze(2).to(compute)
            extended_mask = (1.0 - mask) * MASK_FILL
            hidden = self.embeddings(input_ids=input_ids, token_type_ids=segment_ids)
            if not self.cls_only_last_layer:
                hidden = self.encoder(hidden, attention_mask=extended_mask).last_hidden_state
                return self.pooler(hidden)
            layers = self.encoder.layer
            for layer in layers[:-1]:
                out = layer(hidden, attention_mask=extended_mask)
                hidden = out[0] if isinstance(out, tuple) else out
            return self.pooler(_last_layer_at_cls(layers[-1], hidden, extended_mask))

    class TinyBertForSequenceClassification(nn.Module):
        """Inputs `(input_ids, segment_ids, input_mask)` int64 `[bs, seq]` -> logits `[bs, num_labels]`."""

        def __init__(self, config, num_labels: int = NUM_LABELS):
            super().__init__()
            self.config = config
            self.bert = TinyBertBody(config)
            self.classifier = nn.Linear(config.hidden_size, num_labels)

        def forward(self, input_ids, segment_ids, input_mask):
            pooled = self.bert(input_ids, segment_ids, input_mask)
            return self.classifier(torch.relu(pooled))

    return TinyBertForSequenceClassification


def _last_layer_at_cls(layer, hidden, extended_mask):
    """The last encoder layer's output at position 0 only, `[bs, 1, hidden]`: all the classifier reads, and
    exactly the full layer's row, since every step after the keys and values works row by row."""
    import math

    import torch

    attention = layer.attention.self
    heads, head_size = attention.num_attention_heads, attention.attention_head_size
    batch = hidden.shape[0]
    cls = hidden[:, :1]

    def split(x):  # [bs, rows, hidden] -> [bs, heads, rows, head_size]
        return x.view(batch, -1, heads, head_size).transpose(1, 2)

    query, key, value = split(attention.query(cls)), split(attention.key(hidden)), split(attention.value(hidden))
    scores = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(head_size) + extended_mask
    context = torch.matmul(torch.softmax(scores, dim=-1), value).transpose(1, 2).reshape(batch, 1, heads * head_size)
    attended = layer.attention.output.LayerNorm(layer.attention.output.dense(context) + cls)
    return layer.output.LayerNorm(layer.output.dense(layer.intermediate(attended)) + attended)


@contextlib.contextmanager
def cls_only_last_layer(model):
    """While active, `model` computes its last encoder layer at the [CLS] position only (exact: the
    logits do not change beyond float rounding); exports made inside it carry the smaller graph."""
    body = model.bert
    previous, body.cls_only_last_layer = body.cls_only_last_layer, True
    try:
        yield model
    finally:
        body.cls_only_last_layer = previous


_CLASSIFIER_CLASS = None


def build_model(config, num_labels: int = NUM_LABELS):
    global _CLASSIFIER_CLASS
    if _CLASSIFIER_CLASS is None:
        _CLASSIFIER_CLASS = _build_classifier_class()
    return _CLASSIFIER_CLASS(config, num_labels)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _unpickling_refusal(weights_path: str, exc: pickle.UnpicklingError) -> CheckpointError:
    """torch's weights-only loader refuses both pickled code and damaged bytes; say which it was."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    blocked = [line for line in lines if "GLOBAL" in line]
    if blocked:
        return CheckpointError(f"{weights_path}: refused to load: expected only tensors, got a pickled call to a "
                               f"function that weights-only loading does not allow ({blocked[0]}). Nothing from "
                               "it was executed; use a checkpoint from a trusted source")
    detail = next((line for line in lines if line.lower().startswith("unsupported")), _first_line(exc))
    return CheckpointError(f"{weights_path}: refused to load: expected a state dict of tensors, got content the "
                           f"weights-only loader cannot read ({detail}); the file is corrupted or holds other "
                           "pickled objects")


def read_state_dict(weights_path: str) -> dict:
    """Load a `pytorch_model.bin` without executing pickled code (torch's weights_only loader)."""
    import torch

    expect(os.path.isfile(weights_path), CheckpointError,
           f"{weights_path}: expected the checkpoint weights ({WEIGHTS_NAME}), found no such file")
    expect(os.path.getsize(weights_path) > 0, CheckpointError, f"{weights_path}: expected weights, got an empty file")
    with open(weights_path, "rb") as handle:
        head = handle.read(64)
    expect(not head.startswith(b"version https://git-lfs"), CheckpointError,
           f"{weights_path}: expected the weights, got a Git LFS pointer file (fetch the real file with git lfs pull)")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _unpickling_refusal(weights_path, exc) from None
    except Exception as exc:  # damaged zip/pickle bytes surface as many types (RuntimeError, UnicodeDecodeError, ...)
        raise CheckpointError(f"{weights_path}: expected a PyTorch state dict, got a truncated or corrupted "
                              f"file ({type(exc).__name__}: {_first_line(exc)[:200]})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    expect(isinstance(state, dict), CheckpointError,
           f"{weights_path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    expect(all(isinstance(v, torch.Tensor) for v in state.values()), CheckpointError,
           f"{weights_path}: expected every entry to be a tensor")
    return state


def normalise_state_dict(state: dict) -> dict:
    """Map release-checkpoint names onto the model's: `module.` prefix, LayerNorm gamma/beta, fit_dense."""
    renamed = {}
    for name, tensor in state.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if name.startswith(IGNORED_PREFIXES):
            continue
        if "LayerNorm" in name:
            name = name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
        renamed[name] = tensor
    return renamed


def load_tinybert(model_dir: str, num_labels: int = NUM_LABELS):
    """Build the classifier and load every weight of a TinyBERT release checkpoint, strictly."""
    config = load_bert_config(model_dir)
    weights_path = os.path.join(model_dir, WEIGHTS_NAME)
    state = normalise_state_dict(read_state_dict(weights_path))
    model = build_model(config, num_labels)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [f"{name} (expected {tuple(expected[name].shape)}, got {tuple(state[name].shape)})"
                   for name in expected if name in state and state[name].shape != expected[name].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weight(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} weight(s): {', '.join(unexpected[:5])}"
                        f"{' ...' if len(unexpected) > 5 else ''}")
    if wrong_shape:
        problems.append(f"wrong shape: {'; '.join(wrong_shape[:5])}")
    if problems:
        raise CheckpointError(f"{weights_path}: does not fit the TinyBERT architecture in "
                              f"{os.path.basename(find_config(model_dir))}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model
