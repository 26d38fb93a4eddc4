"""LoRA on the tiny real model (stories260K): training lowers the loss, is seeded, and the model server serves the
adapter (base plus adapter merged at load) exactly as transformers runs the unmerged peft model and as it serves the
merged weights, over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from agentflow.model_server.config import ModelLoadError
from agentflow.tune.base import load_base
from agentflow.tune.examples import TrainExample, split_examples
from agentflow.tune.train import TuneConfig, greedy_completion, save, save_merged, train

from .conftest import serve

ANIMALS = ["cat", "dog", "bird", "girl", "boy", "fish", "frog", "bear", "duck", "cow"]
FRIENDS = ["Tom", "Lily", "Sam", "Max"]
PROMPT = "Once upon a time there was a cat."


def story_examples() -> list[TrainExample]:
    return [TrainExample(f"Once upon a time there was a {a}.", f" The {a} played ball with {b} every day.",
                         id=f"{a}-{b}") for a in ANIMALS for b in FRIENDS]


def tuned(stories: Path, *, seed: int = 0, steps: int = 12):  # type: ignore[no-untyped-def]
    base = load_base(stories)
    split = split_examples(story_examples(), held_out=8, seed=seed)
    model, result = train(base, split, TuneConfig(lr=5e-3, max_steps=steps, seed=seed, eval_generate=0),
                          progress=False)
    return base, split, model, result


@pytest.fixture(scope="module")
def adapter(stories: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A project folder holding .agentflow/adapters/story (and its merged weights), trained once."""
    root = tmp_path_factory.mktemp("project")
    base, split, model, result = tuned(stories)
    out = save(model, base, result, root / ".agentflow" / "adapters" / "story", split, task="text", source="test")
    ids = base.tokenizer(PROMPT, add_special_tokens=True)["input_ids"]
    new = greedy_completion(model, base, ids, 12)
    text = base.tokenizer.decode(ids + new, skip_special_tokens=True)[len(base.tokenizer.decode(ids, skip_special_tokens=True)):]
    save_merged(model, base, out / "merged")
    return root, out, result, text


def completion(url: str, model: str, prompt: str, tokens: int = 12) -> str:
    reply = httpx.post(f"{url}/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": tokens,
                                                       "temperature": 0}, timeout=60)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["choices"][0]["text"])


def test_a_few_steps_lower_the_training_and_held_out_loss(adapter) -> None:  # type: ignore[no-untyped-def]
    _, out, result, _ = adapter
    assert result.steps == 12 and result.examples_train == 32 and result.examples_held_out == 8
    assert sum(result.losses[-3:]) / 3 < 0.5 * sum(result.losses[:3]) / 3
    assert result.held_out_loss_after < 0.5 * result.held_out_loss_before
    meta = json.loads((out / "tune.json").read_text())
    assert meta["result"]["held_out_loss_after"] == result.held_out_loss_after
    held = [json.loads(line)["id"] for line in (out / "held_out.jsonl").read_text().splitlines()]
    trained = [json.loads(line)["id"] for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(held) == 8 and not set(held) & set(trained)


def test_the_same_seed_gives_the_same_losses_and_another_seed_does_not(stories: Path, adapter) -> None:  # type: ignore[no-untyped-def]
    _, _, first, _ = adapter
    again = tuned(stories, seed=0)[3]
    other = tuned(stories, seed=1)[3]
    assert again.losses == first.losses
    assert other.losses != first.losses


def test_the_model_server_serves_base_plus_adapter_by_name_as_peft_runs_it(  # type: ignore[no-untyped-def]
        stories: Path, adapter, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _, _, unmerged = adapter
    monkeypatch.chdir(root)  # the name is looked up in ./.agentflow/adapters
    for served in serve(f"{stories}+story"):
        assert served.runtime.model_name == "stories260K+story"
        listed = httpx.get(f"{served.url}/v1/models").json()["data"]
        assert [m["id"] for m in listed] == ["stories260K+story"]
        text = completion(served.url, "stories260K+story", PROMPT)
    assert text == unmerged
    assert "played ball" in text
    for served in serve(stories):
        assert completion(served.url, "stories260K", PROMPT) != text  # the adapter changed something


def test_greedy_output_of_base_plus_adapter_equals_the_merged_weights(stories: Path, adapter) -> None:  # type: ignore[no-untyped-def]
    _, out, _, _ = adapter
    prompts = [PROMPT, "Once upon a time there was a frog.", "One day Lily went to the park and"]
    for served in serve(stories, adapter=out):
        with_adapter = [completion(served.url, served.runtime.model_name, p, 16) for p in prompts]
    for served in serve(out / "merged"):
        merged = [completion(served.url, "merged", p, 16) for p in prompts]
    assert with_adapter == merged


def test_an_adapter_of_another_base_or_an_unknown_name_is_refused_with_the_reason(  # type: ignore[no-untyped-def]
        stories: Path, adapter, tmp_path: Path) -> None:
    from agentflow.model_server.adapter import load_adapter
    from agentflow.model_server.runtime import locate_with_adapter

    _, out, _, _ = adapter
    with pytest.raises(ModelLoadError, match="no adapter_config.json.*agentflow tune --name"):
        locate_with_adapter(Path(f"{stories}+nope"), None)
    bad = tmp_path / "bad"
    bad.mkdir()
    config = json.loads((out / "adapter_config.json").read_text())
    (bad / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ModelLoadError, match="use_dora adapters are not served"):
        load_adapter(bad)
    import torch
    from safetensors.torch import save_file

    (bad / "adapter_config.json").write_text(json.dumps(config))
    save_file({"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(8, 99),
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(64, 8)},
              str(bad / "adapter_model.safetensors"))
    with pytest.raises(ModelLoadError, match="trained on another base"):
        for _ in serve(stories, adapter=bad):
            pass


def test_a_profile_alias_names_base_plus_adapter_and_agentflow_starts_that_node(  # type: ignore[no-untyped-def]
        stories: Path, adapter) -> None:
    from agentflow.models.managed_server import ManagedServers
    from agentflow.models.profiles import ModelsConfig

    root, _, _, unmerged = adapter
    (root / "stories260K").symlink_to(stories)  # the base, as the project names it
    config = ModelsConfig.from_project({"profile": "local", "models": {"profiles": {"local": {
        "aliases": {"large": "local/stories260K+story"}}}}})
    entry = config.aliases_of("local")["large"][0]
    assert (entry.model, entry.offline_tasks) == ("local/stories260K+story", ())
    entry = entry.model_copy(update={"context_window": 512, "api_base": "http://127.0.0.1:9/v1"})  # 512: its window
    servers = ManagedServers()
    handle = servers.acquire(entry, project_dir=root)
    try:
        text = completion(handle.api_base.removesuffix("/v1"), "stories260K+story", PROMPT)
    finally:
        servers.release(handle)
    assert text == unmerged


def test_the_command_trains_saves_and_says_how_to_serve(  # type: ignore[no-untyped-def]
        stories: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from agentflow.cli import main

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "examples.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in story_examples()))
    code = main(["tune", "--examples", str(data), "--base", str(stories), "--name", "story", "--max-steps", "6",
                 "--lr", "5e-3", "--held-out", "0.2", "--eval-generate", "4", "-q"])
    assert code == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert summary["steps"] == 6 and summary["examples_held_out"] == 8
    assert summary["last_loss"] < summary["first_loss"]
    assert "agentflow model-server serve --model stories260K+story" in printed.err
    assert (tmp_path / ".agentflow" / "adapters" / "story" / "adapter_model.safetensors").is_file()
    assert main(["tune", "--examples", str(data), "--dataset", str(data), "--name", "x"]) == 2
    assert "one source of training data" in capsys.readouterr().err


def test_training_runs_in_bf16_where_the_cpu_multiplies_it_natively_and_fp32_when_asked(stories: Path) -> None:
    import torch

    from agentflow.tune.base import TuneError

    base = load_base(stories)
    split = split_examples(story_examples(), held_out=8, seed=0)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    _, auto = train(base, split, TuneConfig(lr=5e-3, max_steps=6, seed=0, eval_generate=0), progress=False)
    assert auto.precision == ("bf16" if native else "fp32")
    base = load_base(stories)
    _, fp32 = train(base, split, TuneConfig(lr=5e-3, max_steps=6, seed=0, eval_generate=0, precision="fp32"),
                    progress=False)
    assert fp32.precision == "fp32" and fp32.config["precision"] == "fp32"
    for result in (auto, fp32):  # both learn
        assert sum(result.losses[-2:]) < sum(result.losses[:2])
    with pytest.raises(TuneError, match="precision 'fp16' is not one of auto, bf16, fp32"):
        train(load_base(stories), split, TuneConfig(precision="fp16"), progress=False)
