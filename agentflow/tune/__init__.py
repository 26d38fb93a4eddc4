"""LoRA fine-tuning of the local model (``agentflow tune``), served by the model server as base plus adapter.

- :mod:`agentflow.tune.base`: the base model (what the model server serves: GGUF, packaged or HuggingFace) as a
  trainable transformers model;
- :mod:`agentflow.tune.examples`: training examples from evaluation formats and ``classify`` nodes;
- :mod:`agentflow.tune.traces`: training examples from recorded runs that passed their checks;
- :mod:`agentflow.tune.train`: the training loop (progress bar with loss, held-out report, seeded), saving;
- :mod:`agentflow.tune.cli`: the command.

Needs the ``tune`` extra (torch, transformers, peft). Nothing here is imported by ``import agentflow``.
"""
