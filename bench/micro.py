"""Micro random models with SmolLM2's real tokenizer, for checking that a benchmark runs at all (``--tiny``, CI)."""

from __future__ import annotations

from pathlib import Path


def micro_models(tmp: Path, names: tuple[str, ...] = ("micro-llama", "micro-qwen2")) -> dict[str, str]:
    """A micro random Llama and/or Qwen2 (hidden 64, 2 layers; tied embeddings on the Qwen2), saved under ``tmp``.

    Returns:
        name → folder
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from core.models.registry import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model("embedded:smollm2-135m-instruct"))
    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, eos_token_id=tok.eos_token_id,
                  pad_token_id=tok.pad_token_id)
    kinds = {"micro-llama": (LlamaConfig(**common), LlamaForCausalLM),
             "micro-qwen2": (Qwen2Config(**common, tie_word_embeddings=True), Qwen2ForCausalLM)}
    out = {}
    for name in names:
        config, model = kinds[name]
        torch.manual_seed(0)
        model(config).save_pretrained(tmp / name)
        tok.save_pretrained(tmp / name)
        out[name] = str(tmp / name)
    return out
