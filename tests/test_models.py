"""Routing: tier -> first usable model, complexity moves tiers, --model and --base-url override."""

from __future__ import annotations

import pytest

from mamabear.config.catalog import Catalog, packaged_root
from mamabear.config.models import ModelTable, NoUsableModel, tier_for
from mamabear.config.settings import load
from mamabear.engine.plan import make_plan


def settings(**env: str):
    return load(environ={"MAMABEAR_HOME": "/tmp/unused", **env})


@pytest.fixture(scope="module")
def table() -> ModelTable:
    return ModelTable.load([packaged_root()])


def test_gemini_comes_first_in_every_tier(table):
    for tier in ("fast", "balanced", "pro"):
        assert table.tiers[tier][0].startswith("gemini/")


def test_first_model_whose_provider_has_a_key(table):
    assert table.route("pro", settings(GEMINI_API_KEY="g")).model == "gemini/gemini-2.5-pro"
    route = table.route("pro", settings(ANTHROPIC_API_KEY="a"))
    assert route.model.startswith("anthropic/") and route.key_env == "ANTHROPIC_API_KEY"
    both = table.route("fast", settings(OPENAI_API_KEY="o", ANTHROPIC_API_KEY="a"))
    assert both.model == "openai/gpt-4.1-mini" and both.fallbacks == ("anthropic/claude-haiku-4-5",)
    assert table.route("pro", settings(GOOGLE_API_KEY="g")).key_env == "GOOGLE_API_KEY"


def test_no_usable_model_names_the_variables_that_would_fix_it(table):
    with pytest.raises(NoUsableModel) as err:
        table.route("pro", settings())
    for name in ("GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "--base-url"):
        assert name in err.value.message


def test_forced_model_needs_its_own_provider_key(table):
    assert table.route("fast", settings(MAMABEAR_MODEL="anthropic/claude-sonnet-4-5", ANTHROPIC_API_KEY="a")).model == "anthropic/claude-sonnet-4-5"
    with pytest.raises(NoUsableModel, match="needs ANTHROPIC_API_KEY"):
        table.route("fast", settings(MAMABEAR_MODEL="anthropic/claude-sonnet-4-5", GEMINI_API_KEY="g"))


def test_base_url_serves_the_tier_openai_model_or_the_forced_one(table):
    route = table.route("pro", settings(MAMABEAR_BASE_URL="http://127.0.0.1:1/v1"))
    assert route.model == "openai/gpt-4.1" and route.base_url == "http://127.0.0.1:1/v1"
    forced = table.route("pro", settings(MAMABEAR_BASE_URL="http://h/v1", MAMABEAR_MODEL="llama3.1"))
    assert forced.model == "llama3.1" and forced.llm_model == "openai/llama3.1"


def test_complexity_moves_tasks_between_tiers():
    assert tier_for("balanced", 2) == "fast"
    assert tier_for("fast", 9) == "pro"
    assert tier_for("fast", 5) == "fast"
    assert tier_for("pro", None) == "pro"


def test_plan_routes_each_task_by_agent_tier_and_complexity(table):
    catalog = Catalog([packaged_root()])
    plan = make_plan(catalog, table, "development", {"goal": "a CLI"}, settings(GEMINI_API_KEY="g"))
    by_task = {t.id: t for t in plan.tasks}
    assert by_task["prepare_environment"].tier == "fast"  # complexity 3
    assert by_task["implement_solution"].tier == "pro"  # complexity 8
    assert by_task["select_tools"].route.model == "gemini/gemini-2.5-flash-lite"  # tool_curator is fast
    assert by_task["plan_build"].route.model == "gemini/gemini-2.5-pro"
    assert plan.inputs == {"goal": "a CLI", "stack": "python"}


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"GEMINI_API_KEY": "g-test"}, "GeminiCompletion"),
        ({"OPENAI_API_KEY": "o-test"}, "OpenAICompletion"),
        ({"ANTHROPIC_API_KEY": "a-test"}, "AnthropicCompletion"),
    ],
)
def test_every_provider_in_the_tiers_builds_its_native_client(table, env, expected):
    """The SDK each provider needs is installed, the key reaches the client, and mamabear's retries
    wrap the provider's own class (no call is made)."""
    from mamabear.engine.build import make_llm, make_resilient_llm

    for tier in ("fast", "balanced", "pro"):
        route = table.route(tier, settings(**env))
        llm = make_resilient_llm(route, 0.3, settings(**env), table, control=None)
        assert type(llm).__name__ == f"Resilient{expected}" and type(llm).__mro__[2].__name__ == expected
        assert llm.api_key == next(iter(env.values()))
        assert getattr(llm, "max_retries", 0) == 0  # the SDK does not retry behind our back
        assert type(make_llm(route, 0.3, settings(**env), table.retry.timeout_s)).__name__ == expected
