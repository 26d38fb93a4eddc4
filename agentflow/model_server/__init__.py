"""agentflow's model server: an OpenAI-compatible server for local causal LMs (HuggingFace or GGUF).

It owns its decode loop (static KV cache per slot, continuous batching, CUDA graphs and Triton kernels on a
GPU, batched per-request sampling, constrained decoding to a JSON schema, regex or grammar on llguidance). It
imports nothing from the rest of agentflow, which talks to it over HTTP through the ``self-hosted`` profile.
Install with the ``node`` extra; run with ``agentflow model-server serve --model DIR`` (or ``FILE.gguf``, or a packaged
model such as ``smollm2-135m``). See docs/reference/model-server.md.

(design.md calls this package ``node/``; it is ``serve/`` so that it cannot shadow ``agentflow.node``,
the decorator that declares node types.)
"""
