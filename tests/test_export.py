"""GGUF export: a micro random Llama (SmolLM2's real tokenizer) converted by llama.cpp's own converter, reloaded with
stock transformers and compared with the merged model; the Modelfile; each bad input's one-line error.

The converter is not downloaded here: ``python -m core.export.toolchain`` installs it into the cache once
(``scripts/setup.sh --tests`` should run it); without it the conversion tests skip and say so. The checks that
need llama.cpp's binaries run only where ``python -m core.export.toolchain --build`` has built them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.config import DecodingConfig
from core.errors import ConfigError, ModelLoadError
from core.export import toolchain
from core.export.gguf import ExportError, UnsupportedArchitecture, export_gguf, remove_stale_partials
from core.export.modelfile import PLAIN_CHAT_TEMPLATE, PromptFormat, modelfile_text, ollama_template, stop_tokens

needs_converter = pytest.mark.skipif(
    toolchain.converter_path() is None,
    reason="llama.cpp's converter is not installed: run `python -m core.export.toolchain` once (downloads 77 MB)")
needs_binaries = pytest.mark.skipif(
    toolchain.find_llama_tools() is None,
    reason="llama.cpp's binaries are not built: `python -m core.export.toolchain --build` (10-15 min on 2 cores)")
SYSTEM = "Bạn là trợ lý dạy tin học."
MCQ_DECODING = DecodingConfig(repetition_penalty=1.15)


def finished_files(folder: Path) -> list[str]:
    """What a user would take for output: every file not hidden."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith(".")) if folder.exists() else []


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert message and len(message.splitlines()) == 1, message
    return message


@pytest.fixture(scope="module")
def micro_llama(micro_model_factory) -> Path:
    return micro_model_factory("llama")


@pytest.fixture(scope="module")
def micro_gemma3(smollm2_dir, tmp_path_factory) -> Path:
    """A micro Gemma-3 text model (Gemma3ForCausalLM) that a GGUF can describe: llama.cpp's Gemma-3 assumes five
    sliding layers to one full one and scales queries by head_dim^-0.5, and transformers' GGUF reader assumes the
    same, so the layer pattern is 5:1 and head_dim 256 (= the default query_pre_attn_scalar). The builder of
    conftest's micro_model_factory, with those two settings."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2, head_dim=256, max_position_embeddings=2048, sliding_window=64,
        layer_types=["sliding_attention"] * 5 + ["full_attention"], bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True))
    out = tmp_path_factory.mktemp("micro-gemma3-6")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def export_of(micro_llama, tmp_path_factory):
    """Builder: the export of the micro Llama in one quant and prompt format, made once per module."""
    made: dict = {}

    def build(quant: str, chat: bool):
        if (quant, chat) not in made:
            out = tmp_path_factory.mktemp(f"export-{quant}-{'chat' if chat else 'plain'}")
            fmt = PromptFormat(chat, SYSTEM if chat else "")
            made[quant, chat] = out, export_gguf(micro_llama, out, quant=quant, fmt=fmt, decoding=MCQ_DECODING,
                                                 name="micro", verify_tokens=8)
        return made[quant, chat]

    return build


# --------------------------------------------------------------------------- conversion and verification

@needs_converter
def test_f16_export_reloads_with_transformers_and_matches_the_merged_model(export_of):
    out, report = export_of("f16", True)
    assert report.verdict == "passed" and not report.lossy
    assert finished_files(out) == ["Modelfile", "README.md", "export_report.json", "micro-f16.gguf"]
    logits = next(c for c in report.verification["checks"] if c["name"] == "logits")
    assert logits["passed"] and logits["figures"]["greedy_agreement"] == 1.0
    assert logits["figures"]["kl_mean"] < 1e-6  # f16 rounding of a micro model: measured 1.4e-9
    assert logits["figures"]["identical_generations"] == logits["figures"]["n_prompts"]
    assert json.loads((out / "export_report.json").read_text(encoding="utf-8"))["verdict"] == "passed"


@needs_converter
def test_q8_0_export_is_marked_lossy_and_within_its_limits(export_of):
    out, report = export_of("q8_0", False)
    assert report.verdict == "lossy" and report.lossy
    logits = next(c for c in report.verification["checks"] if c["name"] == "logits")
    assert logits["passed"], logits["figures"]
    f16_size = (export_of("f16", True)[0] / "micro-f16.gguf").stat().st_size
    assert (out / "micro-q8_0.gguf").stat().st_size < 0.7 * f16_size  # measured 0.63: 2 MB of vocabulary in both


@needs_converter
def test_the_tokenizer_reloaded_from_the_gguf_gives_the_same_ids_on_vietnamese(export_of, micro_llama):
    from transformers import AutoTokenizer

    out, report = export_of("f16", True)
    check = next(c for c in report.verification["checks"] if c["name"] == "tokenizer")
    assert check["passed"] and check["figures"]["equal"] == check["figures"]["texts"] >= 4
    original = AutoTokenizer.from_pretrained(micro_llama)
    reloaded = AutoTokenizer.from_pretrained(out, gguf_file="micro-f16.gguf")
    for text in ("Thuật toán sắp xếp nổi bọt có độ phức tạp O(n²).", "Đường đi ngắn nhất: Dijkstra, Bellman–Ford."):
        assert reloaded(text)["input_ids"] == original(text)["input_ids"]


@needs_converter
def test_eos_and_stop_ids_survive_in_the_gguf_and_the_modelfile(export_of):
    out, report = export_of("f16", True)
    special = next(c for c in report.verification["checks"] if c["name"] == "special_tokens")
    assert special["passed"] and special["figures"]["eos_token_id"] == 2
    assert special["figures"]["stops"] == [[2, "<|im_end|>", "<|im_end|>"]]
    assert 'PARAMETER stop "<|im_end|>"' in (out / "Modelfile").read_text(encoding="utf-8")


@needs_converter
def test_a_plain_prompt_run_embeds_the_plain_template_and_passes_the_prompt_through(export_of):
    out, report = export_of("q8_0", False)
    special = next(c for c in report.verification["checks"] if c["name"] == "special_tokens")
    assert special["figures"]["chat_template_equal"]  # PLAIN_CHAT_TEMPLATE, not SmolLM2's chat template
    text = (out / "Modelfile").read_text(encoding="utf-8")
    assert 'TEMPLATE """{{ .Prompt }}"""' in text and "SYSTEM" not in text
    assert "PARAMETER temperature 0" in text and "PARAMETER repeat_penalty 1.15" in text


@pytest.mark.extended
@needs_converter
def test_a_gemma3_text_model_converts_and_matches(micro_gemma3, tmp_path):
    report = export_gguf(micro_gemma3, tmp_path, quant="f16", fmt=PromptFormat(False), name="g3", verify_tokens=8)
    logits = next(c for c in report.verification["checks"] if c["name"] == "logits")
    assert report.verdict == "passed", report.verification["checks"]
    assert logits["figures"]["kl_mean"] < 1e-6  # measured 1.2e-8


@pytest.mark.extended
@needs_converter
def test_a_model_the_gguf_cannot_describe_fails_its_verification(micro_model_factory, tmp_path):
    """conftest's micro Gemma-3: two layers, sliding then full, head_dim 16 with query_pre_attn_scalar 256. The
    converter accepts it, but the GGUF cannot carry that pattern or scale: the reload computes otherwise."""
    report = export_gguf(micro_model_factory("gemma3"), tmp_path, quant="f16", fmt=PromptFormat(False), name="odd",
                         verify_tokens=8)
    assert report.verdict == "failed"
    assert (tmp_path / "odd-f16.gguf").is_file()  # kept, with its report saying so, as a failed merge is
    assert json.loads((tmp_path / "export_report.json").read_text(encoding="utf-8"))["verdict"] == "failed"


@needs_converter
@needs_binaries
def test_llama_cpp_itself_tokenizes_like_transformers_and_generates(export_of):
    _, report = export_of("f16", True)
    checks = {c["name"]: c for c in report.verification["checks"]}
    assert checks["llama_tokenize"]["passed"], checks["llama_tokenize"]["figures"]
    assert checks["llama_generation"]["passed"], checks["llama_generation"]["figures"]  # f16: judged


@needs_converter
@needs_binaries
def test_q4_k_m_goes_through_llama_quantize_and_is_lossy(export_of):
    out, report = export_of("q4_k_m", True)
    assert report.lossy and (out / "micro-q4_k_m.gguf").is_file()
    assert next(c for c in report.verification["checks"] if c["name"] == "logits")["ran"]


# --------------------------------------------------------------------------- the Modelfile (no converter needed)

def test_the_ollama_template_rebuilds_the_prompt_the_chat_run_trained_on(tokenizer):
    template = ollama_template(tokenizer, PromptFormat(True, SYSTEM))
    m = re.fullmatch(r"\{\{ if \.System \}\}(.*)\{\{ else \}\}(.*)\{\{ end \}\}\{\{ \.Response \}\}(.*)", template,
                     re.DOTALL)
    assert m, template
    with_sys, without, after = m.groups()
    user = "Câu hỏi: CPU là gì?"
    assert with_sys.replace("{{ .System }}", SYSTEM).replace("{{ .Prompt }}", user) == tokenizer.apply_chat_template(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}], tokenize=False,
        add_generation_prompt=True)
    assert without.replace("{{ .Prompt }}", user) == tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True)
    assert after == "<|im_end|>\n"


def test_the_modelfile_has_from_template_system_stops_and_the_decoding(tokenizer):
    stops = stop_tokens(tokenizer, {"eos_token_id": [2, 0]})
    assert stops == [(2, "<|im_end|>"), (0, "<|endoftext|>")]
    text = modelfile_text("run-q8_0.gguf", tokenizer, PromptFormat(True, SYSTEM), MCQ_DECODING, stops, "made here")
    lines = text.splitlines()
    assert lines[0] == "# made here" and lines[1] == "FROM ./run-q8_0.gguf" and lines[2].startswith('TEMPLATE """')
    assert f'SYSTEM """{SYSTEM}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in lines and 'PARAMETER stop "<|endoftext|>"' in lines
    assert "PARAMETER temperature 0" in lines and "PARAMETER repeat_penalty 1.15" in lines
    assert "PARAMETER num_predict 128" in lines
    assert ollama_template(tokenizer, PromptFormat(False)) == "{{ .Prompt }}"
    assert "message['content']" in PLAIN_CHAT_TEMPLATE


# --------------------------------------------------------------------------- bad inputs: one line, nothing finished

def test_an_unknown_quantization_is_refused_by_name(micro_llama, tmp_path):
    with pytest.raises(ConfigError) as e:
        export_gguf(micro_llama, tmp_path / "out", quant="q5_k", fmt=PromptFormat(False))
    assert "q5_k" in one_line_error(e) and "f16, q8_0, q4_k_m" in str(e.value)
    assert finished_files(tmp_path / "out") == []


def test_no_merged_folder_and_a_folder_that_is_not_a_model_are_refused(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        export_gguf(tmp_path / "runs" / "r1" / "merged", tmp_path / "out", fmt=PromptFormat(False))
    assert "no merged model folder" in one_line_error(e)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError) as e:
        export_gguf(tmp_path / "empty", tmp_path / "out", fmt=PromptFormat(False))
    assert "config.json" in one_line_error(e)
    assert finished_files(tmp_path / "out") == []


def test_an_output_folder_that_cannot_be_written_is_refused(micro_llama, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError) as e:
        export_gguf(micro_llama, blocker / "out", fmt=PromptFormat(False))
    assert "cannot write to the output folder" in one_line_error(e)


def test_a_chat_run_on_a_model_without_a_chat_template_is_refused(micro_llama, tmp_path):
    import shutil

    plain = tmp_path / "no-template"
    shutil.copytree(micro_llama, plain)
    (plain / "chat_template.jinja").unlink()
    with pytest.raises(ConfigError) as e:
        export_gguf(plain, tmp_path / "out", fmt=PromptFormat(True))
    assert "chat template" in one_line_error(e)
    assert finished_files(tmp_path / "out") == []


@needs_converter
def test_an_architecture_the_converter_does_not_know_is_named_and_leaves_nothing(micro_llama, tmp_path):
    import shutil

    odd = tmp_path / "odd"
    shutil.copytree(micro_llama, odd)
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps(config | {"architectures": ["NotARealArchForCausalLM"]}))
    with pytest.raises(UnsupportedArchitecture) as e:
        export_gguf(odd, tmp_path / "out", fmt=PromptFormat(False))
    assert "NotARealArchForCausalLM" in one_line_error(e)
    assert list((tmp_path / "out").iterdir()) == []  # not even a hidden partial


def test_q4_k_m_without_llama_quantize_says_how_to_build_it(micro_llama, tmp_path, monkeypatch):
    monkeypatch.setattr(toolchain, "find_llama_tools", lambda: None)
    with pytest.raises(toolchain.ToolchainError) as e:
        export_gguf(micro_llama, tmp_path / "out", quant="q4_k_m", fmt=PromptFormat(False))
    assert "python -m core.export.toolchain --build" in one_line_error(e)
    assert finished_files(tmp_path / "out") == []


def test_a_missing_converter_offline_fails_in_one_line(micro_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_STUDIO_CACHE", str(tmp_path / "cache"))  # nothing installed there
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as on an offline machine: no index, no local wheels
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.delenv(toolchain.SDIST_ENV, raising=False)
    with pytest.raises(toolchain.ToolchainError) as e:
        export_gguf(micro_llama, tmp_path / "out", fmt=PromptFormat(False))
    assert "pip could not download llama-cpp-python==" in one_line_error(e)
    assert finished_files(tmp_path / "out") == []


def test_partials_of_a_dead_export_are_removed_and_live_ones_kept(tmp_path):
    import os

    dead = tmp_path / ".run-f16.gguf.partial-999999999.gguf"
    live = tmp_path / f".run-f16.gguf.partial-{os.getppid()}.gguf"
    dead.write_bytes(b"GGUF")
    live.write_bytes(b"GGUF")
    assert remove_stale_partials(tmp_path) == [dead]
    assert live.exists()


def test_the_tools_run_without_the_callers_python_variables(monkeypatch):
    monkeypatch.setenv("PYTHONSTARTUP", "/nonexistent.py")
    monkeypatch.setenv("NO_LOCAL_GGUF", "1")
    env = toolchain.tool_env()
    assert "PYTHONSTARTUP" not in env and "NO_LOCAL_GGUF" not in env
    assert env["PYTHONPATH"].endswith("site") and env["HF_HUB_OFFLINE"] == "1"


# ----------------------------------------------------------------------------- a run, end to end

@pytest.fixture(scope="module")
def unmerged_run(micro_llama, tmp_path_factory) -> Path:
    """A finished 2-step micro MCQ run (the demo's plain prompt) that has not been merged."""
    from conftest import REPO, micro_overrides
    from core import config as C
    from core.train.job import TrainingJob

    overrides = micro_overrides(micro_llama, **{"train.max_steps": 2, "data.validation_fraction": 0.1})
    return TrainingJob(C.load_yaml(REPO / "presets" / "demo.yaml", overrides), tmp_path_factory.mktemp("x")).run()


@needs_converter
def test_the_export_command_merges_first_then_writes_a_verified_f16_folder(unmerged_run, capsys):
    from core.cli import main
    from core.run import RunFolder

    folder = RunFolder(unmerged_run)
    assert not folder.has_merged()
    assert main(["export", str(unmerged_run), "--to", "gguf", "--quant", "f16"]) == 0
    out, err = capsys.readouterr()
    gguf = Path(out.strip().splitlines()[-1])
    assert gguf == folder.export / "f16" / f"{folder.name.lower()}-f16.gguf" and gguf.is_file()
    assert folder.has_merged() and "export: passed" in err
    assert finished_files(gguf.parent) == sorted([gguf.name, "Modelfile", "README.md", "export_report.json"])
    report = json.loads((gguf.parent / "export_report.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "passed" and report["prompt_format"]["chat"] is False  # as the run trained
    assert len(report["verification"]["checks"]) > 0
    merged_at = folder.merged_stamp()
    assert main(["export", str(unmerged_run), "--quant", "q8_0"]) == 0  # the current merge is reused
    assert folder.merged_stamp() == merged_at
    assert "export: lossy" in capsys.readouterr().err


def test_the_export_command_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    from core.cli import main

    assert main(["export", str(tmp_path), "--quant", "f16"]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_a_failed_merge_is_not_exported(unmerged_run, tmp_path):
    import shutil

    from core.export.run import MergeNotUsable, export_run
    from core.run import RunFolder

    run = tmp_path / "copy"
    shutil.copytree(unmerged_run, run, ignore=shutil.ignore_patterns("merged", "export"))
    merged = RunFolder(run).merged
    merged.mkdir()
    (merged / "config.json").write_text("{}", encoding="utf-8")
    (merged / "merge_report.json").write_text(json.dumps({"passed": False, "lossy": False}), encoding="utf-8")
    with pytest.raises(MergeNotUsable) as e:
        export_run(run, quant="f16")
    assert "merge_report.json" in one_line_error(e)
