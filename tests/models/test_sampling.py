"""Typed sampling: validation, merging, and where each parameter goes per provider kind."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentflow.models import Sampling
from agentflow.models.sampling import EXTRA_PARAMS, OPENAI_PARAMS, plan_sampling

ALL = Sampling(temperature=0.7, top_p=0.95, top_k=50, repetition_penalty=1.1,
               logit_bias={11: 5.0}, seed=1, n=2, max_tokens=100, stop="END")


def test_values_are_checked() -> None:
    for bad in ({"temperature": 3}, {"top_p": 0}, {"top_k": 0}, {"n": 0}, {"max_tokens": 0},
                {"logit_bias": {1: 200.0}}, {"tempreature": 1}):
        with pytest.raises(ValidationError):
            Sampling(**bad)


def test_provided_lists_set_parameters_in_json_form() -> None:
    assert Sampling().provided() == {}
    assert Sampling.greedy().provided() == {"temperature": 0.0}
    assert ALL.provided()["stop"] == ["END"] and ALL.provided()["logit_bias"] == {"11": 5.0}


def test_merged_lets_the_override_win_only_where_set() -> None:
    merged = Sampling(temperature=0.2, max_tokens=10).merged(Sampling(max_tokens=99, seed=3))
    assert merged.provided() == {"temperature": 0.2, "seed": 3, "max_tokens": 99}


def test_openai_compatible_servers_receive_everything() -> None:
    plan = plan_sampling(ALL, "openai-compatible")
    assert set(plan.params) == set(OPENAI_PARAMS)
    assert plan.extra_body == {"top_k": 50, "repetition_penalty": 1.1} and plan.dropped == ()


def test_each_provider_drops_what_it_cannot_receive() -> None:
    assert set(plan_sampling(ALL, "openai").dropped) == set(EXTRA_PARAMS)
    anthropic = plan_sampling(ALL, "anthropic")
    assert set(anthropic.dropped) == {"logit_bias", "seed", "n", "repetition_penalty"}
    assert anthropic.params["top_k"] == 50
    ollama = plan_sampling(ALL, "ollama")
    assert set(ollama.dropped) == {"logit_bias", "n"}
    assert ollama.params["repeat_penalty"] == 1.1 and ollama.params["top_k"] == 50


def test_offline_backends_ignore_sampling_without_dropping_it() -> None:
    plan = plan_sampling(ALL, "offline")
    assert plan.dropped == () and "temperature" in plan.ignored and "n" not in plan.ignored


def test_the_static_table_agrees_with_litellm() -> None:
    """What the table sends as standard parameters, LiteLLM declares supported for the provider."""
    from agentflow.models.litellm_adapter import litellm

    lib = litellm()
    for kind, model, provider in [("openai", "gpt-4.1-mini", "openai"),
                                  ("anthropic", "claude-haiku-4-5", "anthropic"),
                                  ("ollama", "llama3.2", "ollama_chat"),
                                  ("openai-compatible", "m", "hosted_vllm")]:
        supported = set(lib.get_supported_openai_params(model=model, custom_llm_provider=provider))
        plan = plan_sampling(ALL, kind)  # type: ignore[arg-type]
        standard = {p for p in plan.params if p in OPENAI_PARAMS}
        assert standard <= supported, (kind, standard - supported)
