"""The training loss with the output layer run only where a token is learned, in chunks of positions.

With the loss on the answer only, most positions are prompt, and their logits (batch × length × vocabulary,
the largest tensor of a step for Gemma's 262k-token vocabulary) are never needed. Two ways, the same loss:

- :func:`linear_cross_entropy`, where the model's output layer is a plain linear map we know: the last hidden
  states at the learned positions go through the output layer and the cross-entropy a chunk of positions at a
  time, and each chunk's gradient with respect to the hidden states is taken right there, so a chunk's logits
  are freed before the next (no logits kept for backward, none recomputed). The idea of Liger's fused linear
  cross-entropy, in plain torch, for the CPU as for CUDA.
- else transformers' ``logits_to_keep``: the logits of the positions where any row of the batch learns.

It knows nothing of the trainer beyond the metrics trl logs (token accuracy, tokens seen).
"""

from __future__ import annotations

import torch

#: float32 logits of one chunk: 2**25 values, 128 MiB (128 positions of a 262k vocabulary, 682 of a 49k one)
CHUNK_VALUES = 1 << 25

#: model types whose causal LM computes ``logits = lm_head(last_hidden_state)``, then at most
#: ``config.final_logit_softcapping`` (Gemma 2/3): the fused loss is exact for them. Others (a logit scale,
#: a multiplier) take the ``logits_to_keep`` path.
PLAIN_OUTPUT_LAYER = frozenset({"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3",
                                "smollm3", "olmo2"})


def chunk_positions(vocab: int) -> int:
    """Positions per chunk of :func:`linear_cross_entropy` for a vocabulary of ``vocab`` tokens."""
    return max(1, CHUNK_VALUES // max(1, vocab))


def fused_loss_applies(model_type: str, modules_to_save: list | tuple | None) -> bool:
    """Whether a model of ``model_type`` trains with the chunked loss (a fully trained output layer does not)."""
    return model_type in PLAIN_OUTPUT_LAYER and not modules_to_save


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum over positions of cross-entropy(softcap(hidden @ weightᵀ), target); also the count of argmax hits.

    The gradient with respect to ``hidden`` is computed chunk by chunk in the forward pass and only scaled in the
    backward one. ``weight`` is frozen (a LoRA run's output layer): no gradient for it.
    """

    @staticmethod
    def forward(ctx, hidden, weight, target, softcap, chunk, dtype, want_grad):
        n = hidden.size(0)
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.long, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if want_grad else None
        w = weight.to(dtype)
        for s in range(0, n, chunk):
            h, t = hidden[s:s + chunk].to(dtype), target[s:s + chunk]
            z = torch.nn.functional.linear(h, w).float()  # the logits, as the model's output layer computes them
            if softcap:
                th = torch.tanh(z / softcap)
                z = th * softcap
            logp = torch.log_softmax(z, dim=-1)
            del z
            loss -= logp.gather(1, t[:, None]).sum()
            correct += (logp.argmax(-1) == t).sum()
            if want_grad:
                p = logp.exp_()  # softmax, in log-softmax's own storage
                p.scatter_add_(1, t[:, None], torch.full((t.numel(), 1), -1.0, device=p.device))
                if softcap:
                    p.mul_(1 - th * th)
                grad_hidden[s:s + chunk] = (p.to(dtype) @ w).to(hidden.dtype)
        ctx.save_for_backward(grad_hidden)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct):
        (grad_hidden,) = ctx.saved_tensors
        grad = None if grad_hidden is None else grad_hidden * grad_loss.to(grad_hidden.dtype)
        return grad, None, None, None, None, None, None


def linear_cross_entropy(hidden, weight, target, *, softcap: float | None = None, chunk: int | None = None):
    """(summed cross-entropy, number of positions whose argmax is the target) of ``hidden`` (N × d) through the
    frozen output layer ``weight`` (V × d), for ``target`` (N) token ids, ``chunk`` positions at a time.

    The matmul runs in the autocast dtype when autocast is on (as ``nn.Linear`` would), else in the hidden states'.
    """
    dev = hidden.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else hidden.dtype
    chunk = chunk or chunk_positions(weight.size(0))
    want = torch.is_grad_enabled() and hidden.requires_grad
    return _LinearCrossEntropy.apply(hidden, weight, target, softcap, chunk, dtype, want)


def _causal_lm(model):
    """The transformers causal LM inside DDP / torch.compile / PEFT wrappers."""
    for attr in ("module", "_orig_mod"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module):
            model = inner
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def plain_output_layer(model) -> tuple[torch.Tensor, float | None] | None:
    """(weight, softcap) of the model's output layer when the fused loss is exact for it, else None."""
    lm = _causal_lm(model)
    config = getattr(lm, "config", None)
    head = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    if config is None or type(head) is not torch.nn.Linear or head.bias is not None or head.weight.requires_grad:
        return None
    if not isinstance(getattr(lm, "model", None), torch.nn.Module):
        return None
    if getattr(config, "model_type", None) not in PLAIN_OUTPUT_LAYER:
        return None
    return head.weight, getattr(config, "final_logit_softcapping", None)


def sparse_logits_loss(trainer, model, inputs: dict, num_items_in_batch=None, *, chunk: int | None = None):
    """The same next-token loss as trl's, with the output layer run only at positions whose next token is learned.

    With a plain output layer (:func:`plain_output_layer`) the loss is :func:`linear_cross_entropy` on the last
    hidden states of the learned positions, ``chunk`` positions at a time; else the model computes the logits of
    the positions where any row learns (transformers' ``logits_to_keep``).
    """
    labels = inputs["labels"]
    shifted = labels[:, 1:]
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    head = plain_output_layer(model)
    if head is not None:
        mask = shifted != -100
        # the decoder's last hidden states, taken by a hook (output_hidden_states would keep every layer's output
        # alive until the loss, 16-bit copies autograd does not otherwise keep); the model's own output layer runs
        # on the first position of each row only, as an index: a logits_to_keep=1 slice is not contiguous, and a
        # linear map of it copies the whole weight once per row
        captured: list = []
        hook = _causal_lm(model).model.register_forward_hook(
            lambda _m, _a, out: captured.append(out[0] if isinstance(out, tuple) else out.last_hidden_state))
        try:
            model(**forward, use_cache=False, logits_to_keep=torch.zeros(1, dtype=torch.long, device=labels.device))
        finally:
            hook.remove()
        hidden = captured[-1][:, :-1][mask]
        loss_sum, correct = linear_cross_entropy(hidden, head[0], shifted[mask], softcap=head[1], chunk=chunk)
        n_valid = int(mask.sum().item())
    else:
        keep = torch.nonzero((shifted != -100).any(dim=0)).squeeze(1)
        outputs = model(**forward, use_cache=False, logits_to_keep=keep)
        logits = outputs.logits.float()
        target = shifted[:, keep]
        mask = target != -100
        loss_sum = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                                     ignore_index=-100, reduction="sum")
        with torch.no_grad():
            n_valid = int(mask.sum().item())
            correct = ((logits.argmax(-1) == target) & mask).sum()
    denom = num_items_in_batch if num_items_in_batch is not None else n_valid
    loss = loss_sum / torch.as_tensor(denom, device=loss_sum.device).clamp(min=1)
    if num_items_in_batch is not None and trainer.args.average_tokens_across_devices and trainer.args.world_size > 1:
        # the trainer's own rule (Trainer.compute_loss): the count is that of all processes, and DDP averages the
        # gradients over them, so each process's share is scaled back up: the step is the global token mean
        loss = loss * trainer.accelerator.num_processes

    # the metrics trl logs: token accuracy on learned tokens, and the running count of tokens seen
    mode = "train" if trainer.model.training else "eval"
    trainer._metrics[mode]["mean_token_accuracy"].append(int(correct.item()) / n_valid if n_valid else 0.0)
    if mode == "train":
        seen = inputs["attention_mask"].sum() if "attention_mask" in inputs else torch.tensor(labels.numel())
        if trainer.args.world_size > 1:  # the tokens of every process, as trl counts them
            seen = trainer.accelerator.gather_for_metrics(seen.to(loss.device).reshape(1)).sum()
        seen = int(seen.item())
        trainer._total_train_tokens += seen
    trainer._metrics[mode]["num_tokens"] = [trainer._total_train_tokens]
    return loss
