"""Independent re-computations used as test oracles, written from the published algorithms
(the original BERT tokenizer and TinyBERT forward pass), sharing no code with the `tinybert` package:

- `ReferenceTokenizer`: the original BERT BasicTokenizer + WordPiece in plain Python;
- `reference_features`: the ModelZoo feature layout computed from it;
- `reference_logits`: the original TinyBERT forward pass as plain tensor algebra on a state dict;
- `random_checkpoint`: a small checkpoint in the TinyBERT release layout, for machines without one.
"""

from __future__ import annotations

import json
import math
import os
import unicodedata

import numpy as np

NEVER_SPLIT = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")


def _is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch):
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF),
                                             (0x2A700, 0x2B73F), (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF),
                                             (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class ReferenceTokenizer:
    def __init__(self, vocab_path):
        with open(vocab_path, encoding="utf-8") as handle:
            self.vocab = {line.rstrip("\n"): i for i, line in enumerate(handle)}

    def _basic(self, text):
        cleaned = []
        for ch in text:
            if ord(ch) == 0 or ord(ch) == 0xFFFD or _is_control(ch):
                continue
            cleaned.append(" " if _is_whitespace(ch) else ch)
        spaced = "".join(f" {ch} " if _is_cjk(ord(ch)) else ch for ch in cleaned)
        tokens = []
        for token in spaced.split():
            if token in NEVER_SPLIT:
                tokens.append(token)
                continue
            token = "".join(c for c in unicodedata.normalize("NFD", token.lower())
                            if unicodedata.category(c) != "Mn")
            current = ""
            for ch in token:
                if _is_punctuation(ch):
                    if current:
                        tokens.append(current)
                    tokens.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                tokens.append(current)
        return tokens

    def _wordpiece(self, word):
        if len(word) > 100:
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            else:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    def ids(self, text):
        return [self.vocab[p] for word in self._basic(text) for p in self._wordpiece(word)]


def reference_features(sentences, vocab_path, seq_len):
    """ModelZoo features: [CLS] tokens[:seq_len-2] [SEP], zero padded; segment ids all zero."""
    tokenizer = ReferenceTokenizer(vocab_path)
    ids = np.zeros((len(sentences), seq_len), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, sentence in enumerate(sentences):
        tokens = [tokenizer.vocab["[CLS]"], *tokenizer.ids(sentence)[:seq_len - 2], tokenizer.vocab["[SEP]"]]
        ids[row, :len(tokens)] = tokens
        mask[row, :len(tokens)] = 1
    return ids, np.zeros_like(ids), mask


def reference_logits(state, config, input_ids, segment_ids, input_mask):
    """The original TinyBERT computation on a release state dict (gamma/beta or weight/bias names)."""
    import torch

    def param(name):
        for candidate in (name, name.replace(".weight", ".gamma"), name.replace(".bias", ".beta")):
            if candidate in state:
                return state[candidate].double()
        raise KeyError(name)

    def linear(x, prefix):
        return x @ param(prefix + ".weight").T + param(prefix + ".bias")

    def layer_norm(x, prefix):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return param(prefix + ".LayerNorm.weight") * (x - mean) / torch.sqrt(var + 1e-12) + param(prefix + ".LayerNorm.bias")

    ids, seg, mask = (torch.from_numpy(np.asarray(a)) for a in (input_ids, segment_ids, input_mask))
    heads = config["num_attention_heads"]
    head_size = config["hidden_size"] // heads
    positions = torch.arange(ids.shape[1])
    x = (param("bert.embeddings.word_embeddings.weight")[ids] + param("bert.embeddings.position_embeddings.weight")[positions]
         + param("bert.embeddings.token_type_embeddings.weight")[seg])
    x = layer_norm(x, "bert.embeddings")
    additive_mask = (1.0 - mask[:, None, None, :].double()) * -10000.0
    batch, length = ids.shape

    def split(t):
        return t.view(batch, length, heads, head_size).permute(0, 2, 1, 3)

    for n in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{n}"
        q, k, v = (split(linear(x, f"{p}.attention.self.{name}")) for name in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_size) + additive_mask
        context = (torch.softmax(scores, dim=-1) @ v).permute(0, 2, 1, 3).reshape(batch, length, -1)
        attention = layer_norm(linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output")
        inner = linear(attention, f"{p}.intermediate.dense")
        inner = inner * 0.5 * (1.0 + torch.erf(inner / math.sqrt(2.0)))
        x = layer_norm(linear(inner, f"{p}.output.dense") + attention, f"{p}.output")
    pooled = torch.tanh(linear(x[:, 0], "bert.pooler.dense"))
    return linear(torch.relu(pooled), "classifier").numpy()


SMALL_CONFIG = {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96,
                "max_position_embeddings": 128, "type_vocab_size": 2, "hidden_act": "gelu",
                "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
                "emb_size": 48, "pre_trained": "", "training": "", "cell": {}, "structure": []}


def random_state_dict(config, num_labels=2, seed=0, layer_norm_names=("weight", "bias")):
    """Every tensor of a TinyBERT release checkpoint, with random values (fit_dense included)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    h, i = config["hidden_size"], config["intermediate_size"]
    w_name, b_name = layer_norm_names
    shapes = {
        "bert.embeddings.word_embeddings.weight": (config["vocab_size"], h),
        "bert.embeddings.position_embeddings.weight": (config["max_position_embeddings"], h),
        "bert.embeddings.token_type_embeddings.weight": (config["type_vocab_size"], h),
        f"bert.embeddings.LayerNorm.{w_name}": (h,), f"bert.embeddings.LayerNorm.{b_name}": (h,),
        "bert.pooler.dense.weight": (h, h), "bert.pooler.dense.bias": (h,),
        "classifier.weight": (num_labels, h), "classifier.bias": (num_labels,),
        "fit_dense.weight": (768, h), "fit_dense.bias": (768,),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"bert.encoder.layer.{n}"
        for name in ("query", "key", "value"):
            shapes[f"{p}.attention.self.{name}.weight"] = (h, h)
            shapes[f"{p}.attention.self.{name}.bias"] = (h,)
        shapes.update({
            f"{p}.attention.output.dense.weight": (h, h), f"{p}.attention.output.dense.bias": (h,),
            f"{p}.attention.output.LayerNorm.{w_name}": (h,), f"{p}.attention.output.LayerNorm.{b_name}": (h,),
            f"{p}.intermediate.dense.weight": (i, h), f"{p}.intermediate.dense.bias": (i,),
            f"{p}.output.dense.weight": (h, i), f"{p}.output.dense.bias": (h,),
            f"{p}.output.LayerNorm.{w_name}": (h,), f"{p}.output.LayerNorm.{b_name}": (h,),
        })
    state = {}
    for name, shape in shapes.items():
        if "LayerNorm" in name:
            base = 1.0 if name.endswith(("weight", "gamma")) else 0.0
            state[name] = base + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[name] = 0.3 * torch.randn(shape, generator=gen)
    return state


def write_checkpoint(folder, vocab_tokens, config_name="config.json", seed=0, layer_norm_names=("weight", "bias")):
    """A small TinyBERT-layout checkpoint folder: config, pytorch_model.bin, vocab.txt."""
    import torch

    os.makedirs(folder, exist_ok=True)
    config = {**SMALL_CONFIG, "vocab_size": len(vocab_tokens)}
    with open(os.path.join(folder, config_name), "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(vocab_tokens) + "\n")
    torch.save(random_state_dict(config, seed=seed, layer_norm_names=layer_norm_names),
               os.path.join(folder, "pytorch_model.bin"))
    return config
