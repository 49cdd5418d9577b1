"""Tests for core.analysis (LoRA weight diagnostics).

Micro models are built in-process (no downloads) and LoRA factors are set by hand
so the expected spectra / intruder counts are known in advance.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any cwd

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from core.analysis import spectra as an  # noqa: E402
from core.analysis.explain import explain  # noqa: E402
from core.analysis.intruders import count_intruders, topk_singular_vectors  # noqa: E402
from core.analysis.result import AnalysisResult, compare  # noqa: E402
from core.analysis.run import analyze_peft_model  # noqa: E402
from core.analysis.spectra import SpectrumCache, delta_singular_values, effective_rank, lora_factors  # noqa: E402
from gui.render.figures import fig_intruders, fig_norm_heatmap, fig_spectra  # noqa: E402

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """The matrices here are tiny: intra-op threads only add overhead, and on a busy
    shared CPU (parallel test runs) their spin-waits made single tests take seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- helpers
def make_peft(hidden=64, inter=128, layers=2, r=8, alpha=16, rslora=False, dora=False,
              targets=ALL_LINEAR, seed=0):
    """A 2-block Llama with LoRA on the given modules (B = 0 at init, as peft does)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=128)
    model = LlamaForCausalLM(cfg)
    lcfg = peft.LoraConfig(r=r, lora_alpha=alpha, use_rslora=rslora, use_dora=dora,
                           target_modules=list(targets), lora_dropout=0.0)
    return peft.get_peft_model(model, lcfg)


def lora_layer(pm, name):
    return dict(pm.named_modules())["base_model.model." + name]


def set_lora(pm, name, A, B):
    mod = lora_layer(pm, name)
    mod.lora_A["default"].weight.data.copy_(A)
    mod.lora_B["default"].weight.data.copy_(B)
    return mod


def orthonormal(n, p, gen):
    return torch.linalg.qr(torch.randn(n, p, generator=gen, dtype=torch.float64))[0].float()


def decaying_matrix(m, n, gen, tau=12.0, floor=0.05):
    """U diag(s) Vᵀ with a decaying spectrum, like a pretrained weight (not a flat MP bulk)."""
    p = min(m, n)
    U, V = orthonormal(m, p, gen), orthonormal(n, p, gen)
    s = torch.exp(-torch.arange(p, dtype=torch.float32) / tau) + floor
    return (U * s) @ V.T


def subspace_cos(U1, U2):
    """Smallest cosine of the principal angles between two column spaces."""
    return float(torch.linalg.svdvals(U1.T.double() @ U2.double()).min())


def n_sentences(text):
    return len(re.findall(r"[.!?](?:\s|$)", text))


@pytest.fixture(scope="module")
def trained_pair():
    """Two 'runs' on the same micro base with random (dense-rank) adapters of different size."""
    out = []
    for run, mag in (("run-a", 0.05), ("run-b", 0.5)):
        pm = make_peft()
        g = torch.Generator().manual_seed(1)
        for name, mod in pm.named_modules():
            if hasattr(mod, "lora_A") and "default" in mod.lora_A:
                A = mod.lora_A["default"].weight
                B = mod.lora_B["default"].weight
                A.data.copy_(torch.randn(A.shape, generator=g))
                B.data.copy_(mag * torch.randn(B.shape, generator=g) / B.shape[0] ** 0.5)
        out.append(analyze_peft_model(pm, label=run, cache=None))
    return out


# ------------------------------------------------------------------- spectrum of ΔW
def test_delta_singular_values_match_dense_random_factors():
    g = torch.Generator().manual_seed(0)
    A, B = torch.randn(8, 48, generator=g), torch.randn(40, 8, generator=g)
    s = delta_singular_values(A, B, 2.0)
    dense = torch.linalg.svdvals(2.0 * B @ A)[:8]
    torch.testing.assert_close(s, dense, rtol=1e-4, atol=0.0)


def test_effective_rank_pure():
    assert effective_rank([1.0]) == pytest.approx(1.0)
    assert effective_rank([3.0, 3.0, 0.0, 0.0]) == pytest.approx(2.0)
    assert effective_rank(torch.ones(7)) == pytest.approx(7.0)
    assert effective_rank([0.0, 0.0]) == 0.0
    assert 1.0 < effective_rank([10.0, 1.0]) < 2.0


def test_rank2_adapter_effective_rank_and_spectrum():
    pm = make_peft(r=8, alpha=16)
    name = "model.layers.0.self_attn.q_proj"
    g = torch.Generator().manual_seed(3)
    A = torch.zeros(8, 64)
    B = torch.zeros(64, 8)
    A[:2] = orthonormal(64, 2, g).T  # only 2 of the r = 8 directions are used
    B[:, :2] = 0.7 * orthonormal(64, 2, g)
    mod = set_lora(pm, name, A, B)

    res = analyze_peft_model(pm, cache=None)
    row = res.module(name)
    assert row is not None and row.layer == 0 and row.module_type == "q_proj" and row.group == "attention"
    assert row.effective_rank == pytest.approx(2.0, abs=0.05)

    dense = mod.get_delta_weight("default")  # peft's own dense ΔW (scaling included)
    ref = torch.linalg.svdvals(dense.detach())[:8]
    ours = torch.tensor(row.singular_values, dtype=ref.dtype)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-6 * float(ref[0]))
    dense = dense.detach()
    assert row.delta_norm == pytest.approx(float(dense.norm()), rel=1e-5)
    assert row.rel_change == pytest.approx(float(dense.norm() / mod.get_base_layer().weight.detach().norm()), rel=1e-5)
    # untouched modules (B = 0) report a zero change and no intruders
    other = res.module("model.layers.1.mlp.down_proj")
    assert other.delta_norm == 0.0 and other.effective_rank == 0.0 and other.intruders == 0


# ------------------------------------------------------------------------- intruders
@pytest.mark.parametrize("method", ["exact", "lowrank"])
def test_delta_along_base_singular_vectors_has_no_intruders(method):
    g = torch.Generator().manual_seed(5)
    W = torch.randn(128, 96, generator=g) / 96**0.5
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    k = 5
    # Large, distinct boosts: the order of the top directions changes, the directions do not.
    c = torch.arange(k, 0, -1, dtype=torch.float32) * S[0]
    dW = (U[:, :k] * c) @ Vh[:k]
    rep = count_intruders(W, W + dW, k=10, epsilon=0.5, method=method)
    assert rep.count == 0
    assert min(rep.max_cos) > 0.99


def test_model_delta_along_base_singular_vectors_has_no_intruders():
    pm = make_peft(r=8, alpha=16)
    name = "model.layers.1.self_attn.o_proj"
    mod = lora_layer(pm, name)
    W = mod.get_base_layer().weight.detach()
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    k = 4
    c = torch.arange(k, 0, -1, dtype=torch.float32) * S[0]
    A = torch.zeros(8, 64)
    B = torch.zeros(64, 8)
    A[:k] = Vh[:k]
    B[:, :k] = U[:, :k] * c / mod.scaling["default"]
    set_lora(pm, name, A, B)
    for method in ("exact", "lowrank"):
        row = analyze_peft_model(pm, method=method, cache=None).module(name)
        assert row.intruders == 0, method
        assert row.effective_rank > 1.0


@pytest.mark.parametrize("n_planted", [1, 2, 3])
@pytest.mark.parametrize("method", ["exact", "lowrank"])
def test_planted_intruders_standalone(n_planted, method):
    # In a square full-rank W every direction is a mix of W's singular vectors, so an
    # "intruder" is a direction whose mix is spread out: a random unit vector in
    # R^256 has max |cos| ≈ sqrt(2 ln(512)/256) ≈ 0.22 with any orthonormal basis,
    # well under ε = 0.5. Its weight c > σ1(W) pushes it into the top-k.
    # The base has a decaying spectrum like a pretrained matrix. With a flat
    # Marchenko–Pastur bulk (random init) the planted count still came out right in
    # our checks, but the *other* top vectors rotate among near-degenerate
    # neighbours and their max |cos| drops to ~0.6, too close to ε for a robust test.
    n = 256
    g = torch.Generator().manual_seed(11 + n_planted)
    W = decaying_matrix(n, n, g)
    s1 = float(torch.linalg.svdvals(W)[0])
    u, v = orthonormal(n, n_planted, g), orthonormal(n, n_planted, g)
    base_U = torch.linalg.svd(W)[0]
    assert float((base_U.T @ u).abs().max()) < 0.35  # the planted directions really are foreign
    c = torch.tensor([3.0 + j for j in range(n_planted)]) * s1
    dW = (u * c) @ v.T
    rep = count_intruders(W, W + dW, k=10, epsilon=0.5, method=method)
    assert rep.count == n_planted
    assert rep.indices == list(range(n_planted))  # they are the strongest directions
    assert all(x > 0.9 for x in rep.max_cos[n_planted:])  # the rest are still the base's own
    assert rep.approximated == (method == "lowrank")


@pytest.fixture(scope="module")
def planted_model():
    """hidden = 256 model (so random directions are clearly foreign); 2 intruders in block 1."""
    pm = make_peft(hidden=256, inter=256, r=8, alpha=16, targets=["q_proj"])
    g = torch.Generator().manual_seed(7)
    name = "model.layers.1.self_attn.q_proj"
    mod = lora_layer(pm, name)
    base = mod.get_base_layer()
    base.weight.data.copy_(decaying_matrix(256, 256, g))  # pretrained-like spectrum
    s1 = float(torch.linalg.svdvals(base.weight.detach())[0])
    u, v = orthonormal(256, 2, g), orthonormal(256, 2, g)
    A = torch.zeros(8, 256)
    B = torch.zeros(256, 8)
    A[:2] = v.T
    B[:, :2] = u * torch.tensor([3.0, 4.0]) * s1 / mod.scaling["default"]
    set_lora(pm, name, A, B)
    # block 0 gets a small change along random directions that stays out of the top-k
    mod0 = lora_layer(pm, "model.layers.0.self_attn.q_proj")
    w0 = float(torch.linalg.svdvals(mod0.get_base_layer().weight.detach())[0])
    set_lora(pm, "model.layers.0.self_attn.q_proj", torch.randn(8, 256, generator=g) / 16,
             1e-3 * w0 * torch.randn(256, 8, generator=g) / 16)
    return pm


def test_planted_intruders_model_level(planted_model):
    res_low = analyze_peft_model(planted_model, cache=None)  # default method="lowrank"
    res_ex = analyze_peft_model(planted_model, method="exact", cache=None)
    for res in (res_low, res_ex):
        rows = {m.layer: m for m in res.modules}
        assert rows[1].intruders == 2 and rows[1].intruder_indices == [0, 1]
        assert rows[0].intruders == 0
        assert res.totals["intruders"] == 2
        assert {r["layer"]: r["intruders"] for r in res.by_layer} == {0: 0, 1: 2}
    assert res_low.modules[0].approximated  # 256 dims: the randomized path really ran
    assert res_low.config["method"] == "lowrank" and "randomized" in res_low.config["approximations"]
    assert not any(m.approximated for m in res_ex.modules)
    for a, b in zip(res_low.modules, res_ex.modules):
        assert a.intruder_max_cos == pytest.approx(b.intruder_max_cos, abs=1e-3)


# --------------------------------------------------------------------- low-rank SVD path
@pytest.mark.parametrize("shape", [(200, 120), (96, 300), (256, 256)])
def test_lowrank_matches_exact(shape):
    # Randomized SVD converges at rate (σ_{k+p}/σ_k)^(2·niter+1); with a decaying
    # spectrum (as in pretrained weights) it is exact to float32 precision.
    g = torch.Generator().manual_seed(sum(shape))
    M = decaying_matrix(*shape, g, tau=6.0, floor=0.01)
    k = 10
    Ue, Se, Ve = topk_singular_vectors(M, k, "exact")
    Ul, Sl, Vl = topk_singular_vectors(M, k, "lowrank")
    assert Ul.shape == (shape[0], k) and Vl.shape == (shape[1], k)
    torch.testing.assert_close(Sl, Se, rtol=0.0, atol=1e-5 * float(Se[0]))
    assert subspace_cos(Ul, Ue) > 1 - 1e-5
    assert subspace_cos(Vl, Ve) > 1 - 1e-5
    # reproducible: the sketch uses its own seeded generator
    torch.testing.assert_close(topk_singular_vectors(M, k, "lowrank")[1], Sl, rtol=0, atol=0)


def test_lowrank_tiny_matrix_falls_back_to_exact():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(30, 20, generator=g)
    torch.testing.assert_close(topk_singular_vectors(M, 5, "lowrank")[1], topk_singular_vectors(M, 5, "exact")[1])
    with pytest.raises(ValueError):
        topk_singular_vectors(M, 5, "dense")


# ------------------------------------------------------------------------- scaling
@pytest.mark.parametrize("rslora, expected", [(True, 32 / math.sqrt(16)), (False, 32 / 16)])
def test_rslora_scale_in_numbers(rslora, expected):
    pm = make_peft(r=16, alpha=32, rslora=rslora, targets=["q_proj", "v_proj"])
    g = torch.Generator().manual_seed(2)
    name = "model.layers.0.self_attn.v_proj"
    A, B = torch.randn(16, 64, generator=g), torch.randn(32, 16, generator=g)  # v_proj: 64 -> 32 (2 kv heads)
    set_lora(pm, name, A, B)
    res = analyze_peft_model(pm, cache=None)
    assert all(m.scale == pytest.approx(expected) for m in res.modules)
    assert res.config["rslora"] is rslora and res.config["r"] == 16 and res.config["alpha"] == 32
    assert res.config["scale"] == pytest.approx(expected)
    row = res.module(name)
    assert row.delta_norm == pytest.approx(expected * float((B @ A).norm()), rel=1e-5)
    assert row.singular_values[0] == pytest.approx(expected * float(torch.linalg.svdvals(B @ A)[0]), rel=1e-5)


# ------------------------------------------------------------------ other layer kinds
def test_fan_in_fan_out_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=128, n_positions=32))
    pm = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"],
                                                    fan_in_fan_out=True))
    g = torch.Generator().manual_seed(0)
    for name, mod in pm.named_modules():
        if hasattr(mod, "lora_B") and "default" in mod.lora_B:
            mod.lora_B["default"].weight.data.copy_(torch.randn(mod.lora_B["default"].weight.shape, generator=g))
    facs = lora_factors(pm)
    f = next(x for x in facs if x.name == "transformer.h.1.attn.c_attn")
    assert f.fan_in_fan_out and f.layer == 1 and f.W.shape == (192, 64)  # out × in, as LoRA's B @ A
    mod = lora_layer(pm, f.name)
    torch.testing.assert_close(f.W, mod.get_base_layer().weight.detach().T)
    res = analyze_peft_model(pm, cache=None)
    row = res.module(f.name)
    ref = torch.linalg.svdvals(mod.get_delta_weight("default"))[:4]
    torch.testing.assert_close(torch.tensor(row.singular_values, dtype=ref.dtype), ref, rtol=1e-4, atol=1e-6)
    assert {m.group for m in res.modules} == {"attention", "mlp"}


def test_dora_is_flagged_and_low_rank_part_analysed():
    pm = make_peft(dora=True, targets=["q_proj"])
    g = torch.Generator().manual_seed(4)
    set_lora(pm, "model.layers.0.self_attn.q_proj", torch.randn(8, 64, generator=g), torch.randn(64, 8, generator=g))
    res = analyze_peft_model(pm, cache=None)
    assert len(res.modules) == 2 and all(m.dora for m in res.modules)
    assert {s["part"] for s in res.skipped} == {"dora_magnitude"}
    assert any("low-rank direction" in s["reason"] for s in res.skipped)
    assert any("DoRA" in n for n in res.notes)
    assert "DoRA" in explain(res, "en") and "DoRA" in explain(res, "vi")


def test_embedding_lora_is_skipped():
    pm = make_peft(targets=["q_proj", "embed_tokens"])
    facs = lora_factors(pm)
    assert {f.module_type for f in facs} == {"q_proj"}
    assert [s.part for s in facs.skipped] == ["embedding"]


def test_merged_adapter_recovers_base_weight():
    pm = make_peft(targets=["q_proj"])
    name = "model.layers.0.self_attn.q_proj"
    g = torch.Generator().manual_seed(9)
    mod = set_lora(pm, name, torch.randn(8, 64, generator=g), torch.randn(64, 8, generator=g) / 8)
    W0 = mod.get_base_layer().weight.detach().clone()
    before = analyze_peft_model(pm, cache=None).module(name)
    pm.merge_adapter()
    f = next(x for x in lora_factors(pm) if x.name == name)
    assert f.merged
    torch.testing.assert_close(f.W, W0, atol=1e-5, rtol=0)
    after = analyze_peft_model(pm, cache=None).module(name)
    assert after.delta_norm == pytest.approx(before.delta_norm, rel=1e-6)
    assert after.base_norm == pytest.approx(before.base_norm, rel=1e-4)


def test_bnb_4bit_base_weight_is_dequantized():
    bnb = pytest.importorskip("bitsandbytes")
    import bitsandbytes.functional as bnbF

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = bnb.nn.Linear4bit(32, 64, bias=False, quant_type="nf4", compute_dtype=torch.float32)

    torch.manual_seed(0)
    m = Tiny()
    w = torch.randn(64, 32)
    try:
        m.proj.weight = bnb.nn.Params4bit(w.clone(), requires_grad=False, quant_type="nf4")
        m = m.to("cpu")
        bnbF.dequantize_4bit(m.proj.weight.data, m.proj.weight.quant_state)
    except Exception as exc:  # pragma: no cover - depends on the bnb build
        pytest.skip(f"bitsandbytes 4-bit not usable here: {exc}")
    pm = peft.get_peft_model(m, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["proj"]))
    f = lora_factors(pm)[0]
    assert f.quantization == "4bit" and f.W.dtype == torch.float32 and f.W.shape == (64, 32)
    # W is the matrix the quantized layer actually multiplies by
    x = torch.randn(5, 32)
    torch.testing.assert_close(x @ f.W.T, lora_layer(pm, "proj").get_base_layer()(x), rtol=1e-4, atol=1e-4)
    res = analyze_peft_model(pm, cache=None)
    assert res.modules[0].quantization == "4bit" and any("dequantized" in n for n in res.notes)


# --------------------------------------------------------------- result, cache, JSON
def test_json_roundtrip(tmp_path, trained_pair):
    res = trained_pair[1]
    path = res.save_json(tmp_path)
    assert path == tmp_path / "analysis.json" and path.exists()
    json.loads(path.read_text(encoding="utf-8"))
    json.dumps(res.to_dict(), allow_nan=False)  # strictly JSON-safe
    back = AnalysisResult.from_json(tmp_path)
    assert back.to_dict() == res.to_dict()
    assert back.modules[0] == res.modules[0]
    assert AnalysisResult.from_json(path).label == "run-b"
    for key in ("top_k", "epsilon", "method", "r", "alpha", "rslora", "approximations"):
        assert key in res.config
    assert res.config["top_k"] == an.DEFAULT_TOP_K == 10 and res.config["epsilon"] == an.DEFAULT_EPSILON == 0.5
    assert res.runtime_s > 0
    assert [r["layer"] for r in res.by_layer] == [0, 1]
    assert [r["module_type"] for r in res.by_type] == ALL_LINEAR
    assert {g["group"] for g in res.by_group} == {"attention", "mlp"}


def test_infinite_values_become_null(tmp_path, trained_pair):
    res = AnalysisResult.from_dict(trained_pair[0].to_dict())
    res.modules[0].rel_change = float("inf")
    d = res.to_dict()
    assert d["modules"][0]["rel_change"] is None
    json.dumps(d, allow_nan=False)


def test_spectrum_cache_reused():
    pm = make_peft(targets=["q_proj"])
    cache = SpectrumCache()
    analyze_peft_model(pm, cache=cache)
    assert cache.misses == 2 and cache.hits == 0 and len(cache) == 2
    analyze_peft_model(pm, cache=cache, epsilon=0.3)
    assert cache.hits == 2


# -------------------------------------------------------------------------- figures
def test_figures_trace_counts_and_languages(trained_pair):
    a, b = trained_pair
    n = len(a.modules)
    assert n == 14
    assert len(fig_spectra(a).data) == n
    assert len(fig_spectra([a, b]).data) == 2 * n
    assert len(fig_spectra([a, b], modules=["q_proj"]).data) == 4  # 2 runs × 2 blocks
    assert len(fig_spectra(a, modules=["model.layers.0.mlp.up_proj"]).data) == 1
    assert fig_spectra(a).layout.yaxis.type == "log"

    hm = fig_norm_heatmap(a)
    assert len(hm.data) == 1
    z = hm.data[0].z
    assert len(z) == 7 and len(z[0]) == 2
    assert z[0][0] == pytest.approx(a.module("model.layers.0.self_attn.q_proj").rel_change)

    assert len(fig_intruders(a).data) == 7  # one stacked trace per module type
    assert len(fig_intruders([a, b]).data) == 14  # per (run, module type)

    vi, en = fig_intruders(a, lang="vi"), fig_intruders(a, lang="en")
    assert vi.layout.yaxis.title.text == "Số chiều xâm nhập"
    assert en.layout.yaxis.title.text == "Intruder dimensions"
    assert fig_norm_heatmap(a, lang="en").layout.xaxis.title.text == "Block (layer)"
    assert fig_spectra(a, lang="vi").layout.xaxis.title.text == "Thứ tự hướng (i)"


# -------------------------------------------------------------------- explain, compare
def test_explain_mentions_worst_layer_both_languages(planted_model):
    res = analyze_peft_model(planted_model, cache=None)
    vi, en = explain(res, "vi"), explain(res, "en")
    assert "khối 1" in vi and "block 1" in en
    assert "2 chiều xâm nhập" in vi and "2 intruder dimensions" in en
    assert "quên" in vi and "forgetting" in en
    assert "r = 8" in vi and "r = 8" in en
    for text in (vi, en):
        assert 3 <= n_sentences(text) <= 6, text
    assert any(ch in vi for ch in "ảạầấềộờữ")  # real Vietnamese with diacritics


def test_explain_no_intruders_and_untrained():
    pm = make_peft(targets=["q_proj"])
    untrained = analyze_peft_model(pm, cache=None)
    assert "ΔW = 0" in explain(untrained, "vi") and "untrained" in explain(untrained, "en")

    g = torch.Generator().manual_seed(0)
    A = torch.zeros(8, 64)
    B = torch.zeros(64, 8)
    A[:1] = orthonormal(64, 1, g).T
    B[:, :1] = 1e-4 * orthonormal(64, 1, g)  # tiny rank-1 change: no intruders, erank 1 of r = 8
    set_lora(pm, "model.layers.0.self_attn.q_proj", A, B)
    res = analyze_peft_model(pm, cache=None)
    vi, en = explain(res, "vi"), explain(res, "en")
    assert "Không có chiều xâm nhập" in vi and "No intruder dimensions" in en
    assert "hạng nhỏ hơn" in vi and "smaller rank" in en
    assert 3 <= n_sentences(vi) <= 6 and 3 <= n_sentences(en) <= 6


def test_compare(trained_pair):
    a, b = trained_pair
    d = compare(a, b)
    json.dumps(d, allow_nan=False)
    assert d["labels"] == ["run-a", "run-b"]
    assert d["comparable"] is True and d["common_modules"] == 14 and d["config_diff"] == {}
    t = d["totals"]["intruders"]
    assert t["delta"] == b.totals["intruders"] - a.totals["intruders"]
    rc = d["totals"]["rel_change"]
    assert rc["delta"] == pytest.approx(b.totals["rel_change"] - a.totals["rel_change"])
    assert rc["delta"] > 0  # run-b's adapter is 10× larger
    assert [r["layer"] for r in d["by_layer"]] == [0, 1]
    assert len(d["by_type"]) == 7


def test_analysis_package_imports_neither_gradio_nor_plotly():
    import ast

    imported = set()
    for path in Path(an.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not {"gradio", "plotly", "gui"} & imported
