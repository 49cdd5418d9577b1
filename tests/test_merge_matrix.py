"""The merge matrix's CI subset: merges a user can click, on micro Llama and Qwen2 models, in both dtypes.

The full matrix on the embedded models is a benchmark (``python -m bench --only merge-matrix``); this runs the
same code (bench/merge_matrix.py) on a subset: each init and dtype, both 4-bit types, double quantization,
8-bit, modules_to_save, and a combination the config refuses.
"""

from __future__ import annotations

import pytest

from bench import merge_matrix as M

SUBSET = [  # 8 cells (CI time): each init and dtype, nf4 and fp4, double quantization, 8-bit
    M.Cell("micro-llama", dtype="bfloat16", init="dora"),
    M.Cell("micro-llama", method="qlora-fp4", dtype="bfloat16", init="rslora"),
    M.Cell("micro-qwen2", dtype="bfloat16", init="olora"),
    M.Cell("micro-llama", method="8bit"),
    M.Cell("micro-qwen2", method="qlora-nf4-dq", save="lm_head+embed"),  # float32: trl casts the copies to bf16
    M.Cell("micro-qwen2", init="pissa"),
    M.Cell("micro-qwen2", method="qlora-nf4", init="pissa"),  # not offered: refused before any work
    M.Cell("micro-qwen2", init="pissa", save="lm_head+embed"),  # neither
]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, smollm2_dir) -> dict:
    return M.run(tmp_path_factory.mktemp("matrix"), tiny=True, only=SUBSET, progress=lambda line: None)


def test_every_cell_of_the_subset_passes_or_is_lossy_by_design(matrix):
    bad = [(r["cell"], r.get("error") or r.get("targets")) for r in matrix["rows"]
           if r["verdict"] not in ("passed", "lossy", "refused")]
    assert not bad
    refused = [r for r in matrix["rows"] if r["verdict"] == "refused"]
    assert [r["cell"]["init"] for r in refused] == ["pissa", "pissa"]
    assert all("lora.init_lora_weights" in r["error"] for r in refused)
    n = len(SUBSET) - 2
    assert matrix["n_ok"] == n and f"{n}/{len(SUBSET)} cells" in matrix["markdown"]


def test_a_qlora_run_measures_every_target_and_only_the_trained_one_is_exact(matrix):
    for row in matrix["rows"]:
        if row["verdict"] == "refused":
            continue
        targets = row["targets"]
        if row["cell"]["method"] == "8bit":  # LLM.int8 has no 4-bit target; its dequantized weights are exact
            assert row["target"] == "dequantized" and targets["dequantized"]["passed"]
        elif row["cell"]["method"].startswith("qlora"):
            assert set(targets) >= {"dequantized", "4bit"} and row["target"] == "dequantized"
            assert targets["dequantized"]["passed"] and not targets["dequantized"]["lossy"]
            assert targets["4bit"]["lossy"] and targets["4bit"]["max_abs_dlogit"] > 0  # says by how much
        elif row["cell"]["method"] == "lora":
            assert row["target"] == "original" and targets["original"]["passed"]


def test_the_full_product_and_the_default_subset_cover_every_factor():
    full = M.cells(["a"], full=True)
    assert len(full) == len(M.METHODS) * len(M.DTYPES) * len(M.INITS) * len(M.SAVE)
    default = M.cells(["a", "b"])
    for attr, values in (("method", M.METHODS), ("dtype", M.DTYPES), ("init", M.INITS), ("save", M.SAVE)):
        assert {getattr(c, attr) for c in default} == set(values), attr
    assert len(set(default)) == len(default)
