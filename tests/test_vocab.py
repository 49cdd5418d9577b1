"""Generation over part of the vocabulary (core.inference.vocab): the same greedy answers whenever the set holds
what the model writes, nothing outside the set otherwise, and the model put back as it was."""

from __future__ import annotations

import pytest

from core.config import DecodingConfig

PROMPTS = ["Câu hỏi về RAM", "Bộ nhớ ROM chứa chương trình khởi động do nhà sản xuất ghi sẵn, và",
           "CPU là bộ xử lý trung tâm của máy tính"]
DECODING = DecodingConfig(max_new_tokens=12, repetition_penalty=1.15)


def _model(micro_model_factory, arch, lora=False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = micro_model_factory(arch)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
    if lora:
        import torch
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
        with torch.no_grad():  # a trained-looking adapter: B is not zero, so the adapter changes the answers
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    return tok, model


def _written(drawn):
    return {t for d in drawn for t in d.token_ids}


@pytest.mark.parametrize("arch,lora", [("llama", False), ("gemma3", True)])
def test_greedy_over_a_set_holding_what_the_model_writes_gives_the_same_answers(arch, lora, micro_model_factory):
    """Every token the model writes over the whole vocabulary is in the set (the prompts' tokens are added): the
    narrowed batch writes the same texts, and each token's log-probability is renormalised over the set, so no
    lower. Gemma-3 ties its output layer to the input embedding and scales that embedding; a LoRA adapter sits in
    between."""
    from core.inference.quiz import greedy_batch

    tok, model = _model(micro_model_factory, arch, lora)
    whole = greedy_batch(model, tok, PROMPTS, DECODING)
    ids = _written(whole) | {tok.eos_token_id}
    narrow = greedy_batch(model, tok, PROMPTS, DECODING, vocab=frozenset(ids))
    assert [d.text for d in narrow] == [d.text for d in whole] and [d.token_ids for d in narrow] == [
        d.token_ids for d in whole]
    assert all(n.logprob >= w.logprob - 1e-5 for n, w in zip(narrow, whole))
    assert any(n.logprob > w.logprob + 1e-3 for n, w in zip(narrow, whole))  # the set really was narrower


def test_a_token_outside_the_set_is_never_written(micro_model_factory):
    """Greedy and sampled: the new tokens stay in the set, and a step's scores read back over the whole vocabulary
    are -inf outside it."""
    import torch

    from core.inference.generate import generation_config, logits_processors
    from core.inference.quiz import _generate

    tok, model = _model(micro_model_factory, "gemma3", lora=True)
    x = torch.tensor([tok.encode(PROMPTS[2])])

    def new_ids(decoding, vocab, n=1):
        gc = generation_config(decoding, model, tok)
        gc.num_return_sequences, gc.return_dict_in_generate, gc.output_scores = n, True, True
        torch.manual_seed(3)
        seq, _, step_scores = _generate(model, x, torch.ones_like(x), gc, logits_processors(decoding, x.shape[1]),
                                        vocab)
        return {t for row in seq[:, x.shape[1]:].tolist() for t in row}, step_scores

    written, _ = new_ids(DECODING, None)
    banned = written - set(x[0].tolist()) - {tok.eos_token_id}
    assert banned, "the random model wrote only its prompt's tokens: nothing to ban"
    allowed = frozenset(set(range(len(tok))) - banned)
    greedy, step_scores = new_ids(DECODING, allowed)
    assert greedy and not greedy & banned
    assert torch.isinf(step_scores(0, 0)[sorted(banned)]).all() and step_scores(0, 0).shape == (len(tok),)
    sampled, _ = new_ids(DecodingConfig(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=1.0), allowed, 3)
    assert sampled and not sampled & banned


def test_the_model_is_put_back_after_the_block_even_when_it_fails(micro_model_factory):
    import torch

    from core.inference.vocab import NarrowVocab, narrowable

    tok, model = _model(micro_model_factory, "gemma3", lora=True)
    assert narrowable(model)
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    x = torch.tensor([tok.encode(PROMPTS[1])])
    with torch.no_grad():
        before = model(input_ids=x).logits
    narrow = NarrowVocab(set(x[0].tolist()) | {tok.eos_token_id}, head.weight.shape[0])
    with pytest.raises(RuntimeError, match="inside"):
        with narrow.applied(model), torch.no_grad():
            inside = model(input_ids=narrow.narrow(x)).logits
            assert inside.shape[-1] == len(narrow)
            # the narrow logits are the whole vocabulary's, at the set's tokens
            assert torch.allclose(inside, before[..., narrow.wide_of], atol=1e-5)
            raise RuntimeError("inside")
    assert model.get_input_embeddings() is embedding and model.get_output_embeddings() is head
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, before)
    with pytest.raises(ValueError, match="outside the vocabulary set"):
        NarrowVocab({1, 2}, head.weight.shape[0]).narrow(torch.tensor([[1, 5]]))


def test_a_16_bit_model_gets_its_narrow_logits_in_float32(micro_model_factory):
    """A bfloat16 model: the narrow output layer computes in float32, so its logits agree with the bfloat16 layer's
    to within that layer's rounding but are not themselves rounded to bfloat16 (ties of the rounding do not decide
    greedy tokens); the model's own layers stay bfloat16."""
    import torch

    from core.inference.vocab import NarrowVocab

    tok, model = _model(micro_model_factory, "llama")
    model = model.to(torch.bfloat16)
    x = torch.tensor([tok.encode(PROMPTS[1])])
    with torch.no_grad():
        whole = model(input_ids=x).logits
    head = model.get_output_embeddings()
    narrow = NarrowVocab(set(range(0, head.weight.shape[0], 3)) | set(x[0].tolist()), head.weight.shape[0])
    with narrow.applied(model), torch.no_grad():
        inside = model(input_ids=narrow.narrow(x)).logits
    assert whole.dtype == torch.bfloat16 and inside.dtype == torch.float32
    reference = whole[..., narrow.wide_of].float()
    assert torch.allclose(inside, reference, rtol=2 ** -7, atol=1e-2)
    assert not torch.equal(inside, inside.bfloat16().float())  # more precision than bfloat16 holds
    assert model.get_output_embeddings() is head and head.weight.dtype == torch.bfloat16


def test_spelling_tokens_keep_vietnamese_letters_and_leave_out_other_scripts(tokenizer):
    from core.inference.vocab import spelling_tokens

    kept = {tokenizer.convert_tokens_to_string([t]).strip() for t, i in tokenizer.get_vocab().items()
            if i in spelling_tokens(tokenizer)}
    assert {"a", "Z", "7", ".", "?"} <= kept
    assert not any(len(k) == 1 and "\u4e00" <= k <= "\u9fff" for k in kept)  # no CJK ideograph
    assert tokenizer.eos_token_id in spelling_tokens(tokenizer)
