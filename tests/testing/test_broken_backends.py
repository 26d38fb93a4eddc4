"""Each contract suite fails a backend that breaks its protocol, on the tests that say how."""

from __future__ import annotations

from pathlib import Path

from tests.testing.support import failed, run_suite


def test_the_store_contract_fails_a_store_that_ignores_filters(tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path, "test_careless_store", '''
        import pytest
        from agentflow.retrieval.memory import MemoryStore
        from agentflow.testing.contracts import VectorStoreContract

        class CarelessStore(MemoryStore):
            """Counts every point whatever the filter; an empty delete filter deletes all."""

            async def count(self, filter=None):
                return await super().count(None)

            async def delete(self, filter):
                self._points.clear()

        class TestCarelessStore(VectorStoreContract):
            @pytest.fixture
            def store_factory(self):
                return CarelessStore
        ''')
    assert failed(outcomes) == {
        "test_filters_restrict_every_mode_and_count",
        "test_delete_removes_what_the_filter_matches_and_refuses_an_empty_one",
    }
    assert outcomes["test_dense_search_ranks_by_cosine_and_honours_top_k"] == "passed"


def test_the_chat_model_contract_fails_a_model_that_drops_samples_usage_and_errors(
    tmp_path: Path,
) -> None:
    outcomes = run_suite(tmp_path, "test_careless_model", '''
        import pytest
        from agentflow.models.sampling import plan_sampling
        from agentflow.models.types import ChatResponse
        from agentflow.testing.contracts import ChatModelContract

        class CarelessModel:
            """One sample whatever n asks, no token counts, provider errors passed on raw, and
            capabilities declared as a dict (which shared code would ignore)."""

            name, kind = "careless", "openai-compatible"
            capabilities = {"free": True}

            def __init__(self, fail=False):
                self.fail = fail

            def sampling_plan(self, sampling):
                return plan_sampling(sampling, self.kind)

            async def complete(self, request):
                if self.fail:
                    raise ConnectionRefusedError("connection refused")
                return ChatResponse(text="Paris.", model=self.name)

        class TestCarelessModel(ChatModelContract):
            @pytest.fixture
            def chat_model(self):
                return CarelessModel()

            @pytest.fixture
            def failing_chat_model(self):
                return CarelessModel(fail=True)
        ''')
    assert failed(outcomes) == {
        "test_declared_capabilities_are_capabilities",
        "test_usage_counts_the_tokens_spent",
        "test_n_samples_come_back_as_n_choices",
        "test_it_answers_through_the_router",
        "test_a_failure_raises_a_model_error",
        "test_a_failure_reaches_the_caller_through_the_router",
    }
    assert outcomes["test_complete_answers_with_text"] == "passed"
    assert outcomes["test_a_structured_request_gets_json_matching_its_schema"] == "skipped"


def test_the_trace_hook_contract_fails_a_hook_that_loses_events(tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path, "test_forgetful_hook", '''
        from collections import deque

        import pytest
        from agentflow.testing.contracts import TraceHookContract

        class ForgetfulHook:
            """Keeps the latest 50 events only, and takes no keyword argument but event."""

            def __init__(self):
                self.kept = deque(maxlen=50)

            def on_event(self, *, event):
                self.kept.append(event)

            @property
            def events(self):
                return list(self.kept)

        class TestForgetfulHook(TraceHookContract):
            @pytest.fixture
            def hook(self):
                return ForgetfulHook()
        ''')
    assert failed(outcomes) == {
        "test_nothing_is_lost_when_branches_and_items_run_at_once",
        "test_concurrent_runs_are_kept_apart",
        "test_the_hook_accepts_keyword_arguments_it_does_not_know",
    }
    assert outcomes["test_a_run_arrives_whole_and_in_order"] == "passed"


def test_the_trace_hook_contract_fails_a_hook_that_raises_though_the_engine_swallows_it(
    tmp_path: Path,
) -> None:
    outcomes = run_suite(tmp_path, "test_raising_hook", '''
        import pytest
        from agentflow.tracing.events import EventCollector

        from agentflow.testing.contracts import TraceHookContract

        class FussyHook(EventCollector):
            """Keeps every event, but raises on custom ones (after keeping them)."""

            def on_event(self, *, event, **kwargs):
                super().on_event(event=event, **kwargs)
                if event.kind == "custom":
                    raise KeyError(event.name)

        class TestFussyHook(TraceHookContract):
            @pytest.fixture
            def hook(self):
                return FussyHook()
        ''')
    assert failed(outcomes) == {name for name in outcomes if name != (
        "test_the_hook_accepts_keyword_arguments_it_does_not_know")}
    assert outcomes["test_the_hook_accepts_keyword_arguments_it_does_not_know"] == "passed"
