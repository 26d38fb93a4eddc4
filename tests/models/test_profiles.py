"""Profiles: built-ins, agentflow.yaml, the order a profile is chosen in, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.errors import ConfigError
from agentflow.models import (
    BUILTIN_PROFILES,
    ModelsConfig,
    ServerLaunch,
    Price,
    build_router,
    load_models_config,
    resolve_profile,
)
from agentflow.models.profiles import infer_kind


def test_every_builtin_profile_has_the_standard_aliases() -> None:
    assert set(BUILTIN_PROFILES) == {"offline", "local", "openai", "anthropic", "ollama", "self-hosted"}
    env = {"AGENTFLOW_API_BASE": "http://127.0.0.1:8000/v1"}
    for name in BUILTIN_PROFILES:
        aliases = ModelsConfig().aliases_of(name, env=env)
        assert {"small", "large", "judge", "embed"} <= set(aliases), name


def test_the_profile_is_chosen_cli_then_env_then_workflow_then_yaml_then_offline() -> None:
    config = ModelsConfig(profile="anthropic")
    env = {"AGENTFLOW_PROFILE": "ollama"}
    assert resolve_profile(cli="openai", workflow="self-hosted", config=config, env=env)[0] == "openai"
    assert resolve_profile(workflow="self-hosted", config=config, env=env) == (
        "ollama", "environment variable AGENTFLOW_PROFILE")
    assert resolve_profile(workflow="self-hosted", config=config, env={})[0] == "self-hosted"
    assert resolve_profile(config=config, env={}) == ("anthropic", "agentflow.yaml")
    assert resolve_profile(env={}) == ("offline", "default")


def test_an_unknown_profile_names_its_source_and_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"'opnai' \(from --profile\).*Did you mean 'openai'.*'anthropic'"):
        resolve_profile(cli="opnai", env={})


def test_agentflow_yaml_adds_aliases_fallbacks_and_prices(tmp_path: Path) -> None:
    (tmp_path / "agentflow.yaml").write_text(
        """
profile: self-hosted
models:
  timeout_s: 12
  profiles:
    self-hosted:
      api_base: http://gpu:8000/v1
      price: {per_gpu_second: 0.001}
      aliases:
        large: [hosted_vllm/qwen, {model: openai/gpt-4.1-mini, api_base: null, price: null}]
        summarizer: hosted_vllm/qwen-small
""",
        encoding="utf-8",
    )
    config = load_models_config(tmp_path / "agentflow.yaml")
    router = build_router(config, env={})
    assert router.profile == "self-hosted"
    assert router.models_of("large") == ["hosted_vllm/qwen", "openai/gpt-4.1-mini"]
    assert router.models_of("summarizer") == ["hosted_vllm/qwen-small"]
    assert router.models_of("small") == ["hosted_vllm/default"]  # from the built-in profile
    large = config.aliases_of("self-hosted", env={})["large"]
    assert large[0].api_base == "http://gpu:8000/v1" and large[0].price == Price(per_gpu_second=0.001)
    assert large[1].api_base is None and large[1].provider_kind() == "openai"
    assert router.timeout_s == 12


def test_a_profile_can_extend_another() -> None:
    config = ModelsConfig.from_project({"models": {"profiles": {"cheap": {
        "extends": "openai", "aliases": {"large": "openai/gpt-4.1-mini"}}}}})
    aliases = config.aliases_of("cheap", env={})
    assert [e.model for e in aliases["large"]] == ["openai/gpt-4.1-mini"]
    assert [e.model for e in aliases["small"]] == ["openai/gpt-4.1-mini"]
    assert aliases["small"][0].api_key_env == "OPENAI_API_KEY"


def test_self_hosted_needs_an_api_base_and_says_where_to_set_it() -> None:
    with pytest.raises(ConfigError, match=r"needs an api_base.*models.profiles.self-hosted.api_base.*AGENTFLOW_API_BASE"):
        build_router(None, profile="self-hosted", env={})
    router = build_router(None, profile="self-hosted", env={"AGENTFLOW_API_BASE": "http://127.0.0.1:9/v1"})
    assert router.chain("large")[0].entry.api_base == "http://127.0.0.1:9/v1"
    assert router.chain("large")[0].entry.price is not None  # self-hosted is never free


def test_config_errors_name_the_file_and_yaml_path() -> None:
    with pytest.raises(ConfigError, match=r"agentflow.yaml \(models.retries.max_attempts\)"):
        ModelsConfig.from_project({"models": {"retries": {"max_attempts": 0}}})
    with pytest.raises(ConfigError, match=r"models.profiles.x.aliases.small"):
        ModelsConfig.from_project({"models": {"profiles": {"x": {"aliases": {"small": {"modle": "a"}}}}}})


def test_a_missing_agentflow_yaml_means_defaults(tmp_path: Path) -> None:
    assert load_models_config(tmp_path / "nope.yaml") == ModelsConfig()
    assert build_router(tmp_path / "nope.yaml", env={}).profile == "offline"


@pytest.mark.parametrize(
    ("model", "api_base", "kind"),
    [
        ("offline", None, "offline"),
        ("offline/minilm", None, "offline"),
        ("openai/gpt-4.1", None, "openai"),
        ("gpt-4o", None, "openai"),
        ("openai/my-model", "http://127.0.0.1:8000/v1", "openai-compatible"),
        ("hosted_vllm/qwen", "http://x/v1", "openai-compatible"),
        ("anthropic/claude-haiku-4-5", None, "anthropic"),
        ("ollama_chat/llama3.2", None, "ollama"),
    ],
)
def test_the_provider_kind_is_inferred_from_the_model_string(model: str, api_base: str | None, kind: str) -> None:
    assert infer_kind(model, api_base) == kind


def test_the_cache_mode_comes_from_config_env_or_argument(tmp_path: Path) -> None:
    config = {"models": {"cache": {"mode": "read", "path": "cache.db"}}}
    assert build_router(config, root=tmp_path, env={}).cache.mode == "read"  # type: ignore[union-attr]
    env = {"AGENTFLOW_CACHE_MODE": "write"}
    assert build_router(config, root=tmp_path, env=env).cache.mode == "write"  # type: ignore[union-attr]
    assert build_router(config, root=tmp_path, env=env, cache_mode="off").cache is None
    with pytest.raises(ConfigError, match="unknown model cache mode 'sometimes'"):
        build_router(config, env={"AGENTFLOW_CACHE_MODE": "sometimes"})


@pytest.mark.parametrize("text", [
    "profiles: &p [*p]\n",  # a recursive alias
    "profiles:\n" + "".join(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" if i else
                            '  l0: &l0 ["lol"]\n' for i in range(9)),  # an alias bomb
    "profiles: " + "[" * 500 + "]" * 500 + "\n",
])
def test_agentflow_yaml_is_read_with_the_bounded_loader(tmp_path: Path, text: str) -> None:
    (tmp_path / "agentflow.yaml").write_text(text)
    with pytest.raises(ConfigError, match="agentflow.yaml: not valid YAML: .*(recursive|expand|nested)"):
        load_models_config(tmp_path / "agentflow.yaml")


def test_the_local_profile_sends_every_chat_alias_to_a_node_agentflow_may_start() -> None:
    aliases = ModelsConfig().aliases_of("local", env={})
    for alias in ("small", "large", "judge"):
        (entry,) = aliases[alias]
        assert entry.model == "local/smollm2-135m" and entry.provider_kind() == "openai-compatible"
        assert entry.api_base == "http://127.0.0.1:8000/v1"  # `agentflow model-server serve`'s default address
        assert entry.serve is not None and entry.serve.model is None  # serves the entry's own name
        assert "--max-len" in entry.serve.args and entry.context_window == 2048
        assert entry.price == Price()  # the local CPU costs nothing unless priced in agentflow.yaml
    assert [e.model for e in aliases["embed"]] == ["offline/minilm"]  # the model server serves no embeddings


def test_a_profile_serve_goes_only_to_entries_at_the_profile_address() -> None:
    config = ModelsConfig.from_project({"models": {"profiles": {"mine": {
        "api_base": "http://127.0.0.1:8100/v1",
        "serve": {"model": "models/tinyllama.gguf", "args": ["--threads", "2"]},
        "aliases": {"large": ["hosted_vllm/tinyllama",
                              {"model": "openai/gpt-4.1-mini", "api_base": None}],
                    "judge": {"model": "hosted_vllm/other", "serve": {"model": "models/other.gguf"}}},
    }}}})
    aliases = config.aliases_of("mine", env={})
    local, hosted = aliases["large"]
    assert local.serve == ServerLaunch(model="models/tinyllama.gguf", args=("--threads", "2"))
    assert hosted.serve is None  # its own address: agentflow does not start anything for it
    assert aliases["judge"][0].serve == ServerLaunch(model="models/other.gguf")


def test_serve_needs_an_openai_compatible_model_and_leaves_address_flags_to_agentflow() -> None:
    config = ModelsConfig.from_project({"models": {"profiles": {"bad": {"aliases": {
        "large": {"model": "openai/gpt-4.1", "serve": {"model": "x.gguf"}}}}}}})
    with pytest.raises(ConfigError, match=r"'openai/gpt-4.1' of alias 'large' \(profile 'bad'\) has serve:.*hosted_vllm/NAME"):
        config.aliases_of("bad", env={})
    with pytest.raises(ConfigError, match=r"models.profiles.x.serve.args.*--port are set by agentflow"):
        ModelsConfig.from_project({"models": {"profiles": {"x": {"serve": {"args": ["--port=9000"]}}}}})
