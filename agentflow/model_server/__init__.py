"""agentflow's model server: an OpenAI-compatible server for local causal LMs (HuggingFace or GGUF).

It owns its decode loop (static KV cache per slot, continuous batching, CUDA graphs and Triton kernels on a
GPU, batched per-request sampling, constrained decoding to a JSON schema, regex or grammar on llguidance). It
imports nothing from the rest of agentflow, which talks to it over HTTP only: the ``local`` profile starts one
on demand, and any profile can point at one (``api_base``). Install with the ``model-server`` extra; run with
``agentflow model-server serve --model DIR`` (or ``FILE.gguf``, or a packaged model such as ``smollm2-135m``).
See docs/reference/model-server.md.

The name is "model server" everywhere (this package, the command, the extra, its logs and metrics): "node"
means a graph node, and ``agentflow serve`` serves workflows (:mod:`agentflow.api`). ``agentflow node`` is the
command's old name and still works.
"""
