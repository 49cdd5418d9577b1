"""The Ollama ``Modelfile`` and the README beside an exported GGUF: the prompt the run was trained on, its stop
tokens and the app's decoding defaults, as text.

Owns: the prompt format of a run as the export needs it (:class:`PromptFormat`), the stop tokens of a merged
model, the translation of a chat template into an Ollama (Go) template, the chat template embedded in the GGUF
for a plain-prompt run, and the two texts. Must not: load models, run llama.cpp or write files (the caller writes
them atomically).

The Go template is not a translation of the Jinja source, which no program can do in general: the tokenizer's
own ``apply_chat_template`` renders one turn with marker strings in place of the system prompt, the user prompt
and the answer, and the markers become ``{{ .System }}``, ``{{ .Prompt }}`` and ``{{ .Response }}``. So it holds
exactly the text training saw for a one-turn prompt; Ollama repeats it per turn for a longer chat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from core.config import DecodingConfig
from core.errors import ConfigError

# A plain-prompt run learned ``prompt + completion + EOS``: what a llama.cpp chat gets is the user's text as is.
PLAIN_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
_SYS, _USER, _RESP = "\x01system\x01", "\x01prompt\x01", "\x01response\x01"


@dataclass(frozen=True)
class PromptFormat:
    """How the run built its prompts: through the model's chat template (with this system prompt), or plain."""

    chat: bool
    system_prompt: str = ""


def stop_tokens(tokenizer, generation_config: dict | None) -> list[tuple[int, str]]:
    """(id, text) of every token that ends an answer: the tokenizer's EOS (what training appended) and the ids
    of generation_config.json's ``eos_token_id`` (what generation stops at), in that order, without repeats."""
    ids = [tokenizer.eos_token_id]
    extra = (generation_config or {}).get("eos_token_id")
    ids += extra if isinstance(extra, list) else [extra]
    out: list[tuple[int, str]] = []
    for i in ids:
        if isinstance(i, int) and i not in [o[0] for o in out]:
            out.append((i, tokenizer.convert_ids_to_tokens(i)))
    return out


def adds_bos(tokenizer) -> bool:
    """Whether the tokenizer puts BOS before a text by itself (then llama.cpp does too, and a template must not)."""
    ids = tokenizer("a")["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _go(text: str, bos: str | None) -> str:
    """Rendered template text → Go template text: markers become fields, a literal ``{{`` is quoted."""
    if bos and text.startswith(bos):
        text = text[len(bos):]  # llama.cpp adds BOS itself; a second one would shift every position
    text = text.replace("{{", '{{ "{{" }}')
    return text.replace(_SYS, "{{ .System }}").replace(_USER, "{{ .Prompt }}").replace(_RESP, "{{ .Response }}")


def ollama_template(tokenizer, fmt: PromptFormat) -> str:
    """The Modelfile TEMPLATE that rebuilds the prompt of the run (see the module docstring).

    Raises:
        ConfigError: a chat run on a tokenizer without a chat template.
    """
    if not fmt.chat:
        return "{{ .Prompt }}"
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("the run used the chat template, but the merged model's tokenizer has none",
                          field="data.use_chat_template")
    bos = tokenizer.bos_token if adds_bos(tokenizer) else None
    from jinja2 import TemplateError

    without = _render(tokenizer, [{"role": "user", "content": _USER}], True)
    try:
        with_sys = _render(tokenizer, [{"role": "system", "content": _SYS}, {"role": "user", "content": _USER}], True)
        full = _render(tokenizer, [{"role": "system", "content": _SYS}, {"role": "user", "content": _USER},
                                   {"role": "assistant", "content": _RESP}], False)
    except TemplateError:  # a template that refuses a system turn (raise_exception)
        with_sys, full = None, _render(tokenizer, [{"role": "user", "content": _USER},
                                                   {"role": "assistant", "content": _RESP}], False)
    suffix = full.split(_RESP, 1)[1] if _RESP in full else ""
    if with_sys is None or _SYS not in with_sys:
        head = _go(without, bos)
    else:
        head = "{{ if .System }}" + _go(with_sys, bos) + "{{ else }}" + _go(without, bos) + "{{ end }}"
    return head + "{{ .Response }}" + _go(suffix, None)


def _quoted(text: str) -> str:
    """A Modelfile triple-quoted value."""
    if '"""' in text:
        raise ConfigError('a Modelfile value cannot hold three double quotes (""")', field="modelfile")
    return '"""' + text + '"""'


def parameters(decoding: DecodingConfig) -> list[tuple[str, str]]:
    """Ollama PARAMETER lines for the app's decoding (the same names llama.cpp uses)."""
    out = [("num_predict", str(decoding.max_new_tokens))]
    if decoding.do_sample:
        out += [("temperature", f"{decoding.temperature:g}"), ("top_p", f"{decoding.top_p:g}"),
                ("seed", str(decoding.seed))]
    else:
        out += [("temperature", "0")]  # greedy, as the app's evaluation and the merge check
    if decoding.repetition_penalty != 1.0:
        out += [("repeat_penalty", f"{decoding.repetition_penalty:g}")]
    return out


def modelfile_text(gguf_name: str, tokenizer, fmt: PromptFormat, decoding: DecodingConfig,
                   stops: list[tuple[int, str]], header: str = "") -> str:
    """The Modelfile: FROM the GGUF beside it, TEMPLATE, SYSTEM (a chat run's system prompt), a stop per stop
    token, and the decoding defaults.

    Args:
        gguf_name: the file name of the GGUF (the Modelfile lies beside it).
        tokenizer: the merged model's tokenizer (its chat template, special tokens).
        fmt: the run's prompt format.
        decoding: the app's decoding settings for this task (greedy, repetition penalty …).
        stops: (id, text) from :func:`stop_tokens`.
        header: comment lines put first (provenance, the verification verdict).
    """
    lines = [f"# {h}" for h in header.splitlines()] + [f"FROM ./{gguf_name}",
                                                      f"TEMPLATE {_quoted(ollama_template(tokenizer, fmt))}"]
    if fmt.chat and fmt.system_prompt:
        lines.append(f"SYSTEM {_quoted(fmt.system_prompt)}")
    lines += [f"PARAMETER stop {json.dumps(text, ensure_ascii=False)}" for _, text in stops]
    lines += [f"PARAMETER {k} {v}" for k, v in parameters(decoding)]
    return "\n".join(lines) + "\n"


def readme_text(name: str, gguf_name: str, fmt: PromptFormat, decoding: DecodingConfig, verdict: str,
                figures: str) -> str:
    """A short README.md: how to run the file with Ollama, llama.cpp and LM Studio, and what was checked."""
    rp = decoding.repetition_penalty
    sampling = (f"--temp {decoding.temperature:g} --top-p {decoding.top_p:g} --seed {decoding.seed}"
                if decoding.do_sample else "--temp 0")
    prompt_note = ("The prompt goes through the model's chat template (embedded in the GGUF)"
                   + (f", with the system prompt {fmt.system_prompt!r}." if fmt.system_prompt else ".")
                   if fmt.chat else
                   "The run trained on plain prompts: give the model the whole prompt as the app formats it "
                   "(the GGUF's chat template and the Modelfile's TEMPLATE pass it through unchanged).")
    sys_arg = f' -sys "{fmt.system_prompt}"' if fmt.chat and fmt.system_prompt else ""
    penalty = f" --repeat-penalty {rp:g}" if rp != 1.0 else ""
    return f"""# {name} ({gguf_name})

Exported by LoRA Studio with llama.cpp's own converter. Verification: **{verdict}** — {figures}
(details in `export_report.json`).

{prompt_note}

## Ollama

```
ollama create {name} -f Modelfile
ollama run {name} "your prompt"
```

## llama.cpp

```
llama-cli -m {gguf_name}{sys_arg} {sampling}{penalty}
llama-completion -m {gguf_name} -no-cnv -p "your prompt" -n {decoding.max_new_tokens} {sampling}{penalty}
```

LM Studio: import `{gguf_name}` (My Models → import), then set the same temperature{
' and repeat penalty' if penalty else ''}.
{'''
Note: the app's repetition penalty counts only the answer's tokens; llama.cpp's and Ollama's `repeat_penalty`
also count the last 64 prompt tokens, so copying from the prompt is penalised a little there.
''' if penalty else ''}"""
