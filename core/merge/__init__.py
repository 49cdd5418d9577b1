"""Merge an adapter into its base, the right way for LoRA and QLoRA, and prove it with numbers.

What the adapter is merged onto (``onto``):
    original     the base's 16/32-bit weights. Exact for a LoRA run. For a QLoRA run this is what
                 other tools ship: the adapter learned to correct the *4-bit* weights, so on the
                 original ones it drifts by the quantization error.
    dequantized  (QLoRA runs) the base loaded in 4-bit exactly as training held it, each 4-bit layer
                 turned into a float ``nn.Linear`` holding the weights its forward pass multiplied by,
                 then merged: the merged model is the adapter as trained.
    4bit         merged into the 4-bit weights and re-quantized: lossy, only on request.
    auto         dequantized for a QLoRA run, original otherwise.

Every merge is verified against the adapter as trained (the base as trained — 4-bit for QLoRA — with the
adapter applied, not merged) on prompts from the run's own validation data; the merged model is measured as
saved, reloaded with stock ``AutoModelForCausalLM``. The parts: ``build`` (the merged model), ``verify`` (the
figures and limits), ``report`` (the data) and ``markdown`` (its words), ``run`` (``merge_run``, the one
orchestration), ``hub`` (publishing), ``chain`` (train → merge → train).
"""
