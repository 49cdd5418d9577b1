"""Export a merged model for other runtimes: a GGUF file for llama.cpp, Ollama and LM Studio.

The conversion and the quantization are llama.cpp's own tools, not a tensor map of ours, so that they stay
correct as architectures change. The parts: ``toolchain`` (the pinned llama.cpp release, its install into the
cache and how its tools are run) and ``gguf`` (convert, the Ollama Modelfile, and the verification of the GGUF
against the merged model, reloaded with stock transformers and, where its binaries are built, run by llama.cpp).
"""
