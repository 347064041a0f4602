"""The OpenAI-compatible gateway, driven by the official `openai` SDK against a real server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from aios_site.tokens import token_create
from observability.models import Span
from routing.models import RoutingDecision
from tests.factories import make_user
from tests.observability.helpers import flushed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    import time

    from tests.seeds import ensure_seed_data

    ensure_seed_data()
    time.sleep(0.6)  # the server process notices new versions within AIOS_CONFIG_RECHECK_S (0.5 s)


@pytest.fixture
def token() -> str:
    _, raw = token_create(user=make_user("operator", username=f"app-{uuid.uuid4().hex[:6]}"), name="billing",
                          scopes=["gateway"])  # fmt: skip
    return raw


@pytest.fixture
def client(asgi_server: str, token: str) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=f"{asgi_server}/v1", api_key=token, max_retries=0)
    yield c
    c.close()


def wait_for_spans(trace_hex: str, n: int) -> list[Span]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        spans = list(Span.objects.filter(trace_id=uuid.UUID(trace_hex)))
        if len(spans) >= n:
            return spans
        time.sleep(0.2)
    flushed()
    return list(Span.objects.filter(trace_id=uuid.UUID(trace_hex)))


def wait_for_decision(trace_hex: str) -> RoutingDecision:
    """Decisions are written in batches off the request path, like spans."""
    import time

    deadline = time.monotonic() + 10
    while (decision := RoutingDecision.objects.filter(trace_id=uuid.UUID(trace_hex)).first()) is None:
        assert time.monotonic() < deadline, "the decision was never written"
        time.sleep(0.2)
    return decision


def test_auto_routes_answers_and_traces_the_call(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Design a rollout plan and explain each step."}]
    )
    reply = raw.parse()
    assert reply.choices[0].message.content and reply.usage.total_tokens > 0
    assert raw.headers["x-aios-model"] == reply.model == "sim/complex"
    assert raw.headers["x-aios-simulated"] == "true"
    cost = Decimal(raw.headers["x-aios-cost-usd"])
    assert cost > 0
    spans = {s.kind: s for s in wait_for_spans(raw.headers["x-aios-trace-id"], 4)}
    assert set(spans) == {"internal", "cache", "route", "llm"}
    assert spans["cache"].attributes["aios.cache.result"] == "bypass"  # no temperature: not cacheable
    llm = spans["llm"]
    assert llm.model == "sim/complex" and llm.input_tokens == reply.usage.prompt_tokens
    assert llm.cost_usd == cost and llm.api_token == "billing"
    assert spans["route"].attributes["aios.route.complexity"] == "complex"


def test_a_named_model_passes_through(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="sim/medium", messages=[{"role": "user", "content": "hi"}])
    assert reply.model == "sim/medium"


def test_streaming_reports_usage_and_cost_in_the_final_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Explain DNS in two sentences."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[simulated")
    final = chunks[-1]
    assert final.choices == [] and final.usage.completion_tokens > 0
    assert Decimal(final.model_extra["aios"]["cost_usd"]) > 0


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {"type": "function", "function": {"name": "get_time", "description": "The time in a timezone"}}


def test_a_tool_call_comes_back_and_its_result_gets_an_answer(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Lyon right now?"}]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, tools=[CLOCK, WEATHER])
    reply = raw.parse()
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"city": "simulated", "unit": "celsius"}
    llm = next(s for s in wait_for_spans(raw.headers["x-aios-trace-id"], 4) if s.kind == "llm")
    assert llm.output_tokens > 0

    # The SDK's own message object goes back as the assistant turn, then the tool's result.
    messages += [choice.message, {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 11}'}]
    answer = client.chat.completions.create(model="auto", messages=messages, tools=[CLOCK, WEATHER])
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content.startswith("[simulated")


def test_a_streamed_tool_call_arrives_in_deltas_the_sdk_assembles(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="sim/simple",
        messages=[{"role": "user", "content": "Time please"}],
        tools=[CLOCK, WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        stream=True,
    )
    name, arguments, finish = "", "", None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            name += delta.function.name or "" if delta.function else ""
            arguments += delta.function.arguments or "" if delta.function else ""
        finish = chunk.choices[0].finish_reason if chunk.choices and chunk.choices[0].finish_reason else finish
    assert (name, json.loads(arguments), finish) == ("get_time", {}, "tool_calls")


def test_a_tool_call_is_cached_for_the_same_request_only(client: openai.OpenAI) -> None:
    import time

    def ask(question: str) -> Any:
        return client.chat.completions.with_raw_response.create(
            model="auto", temperature=0, tools=[WEATHER], messages=[{"role": "user", "content": question}]
        )

    # Without tools, this rewording is a semantic hit (test_repeated_and_paraphrased_questions...).
    question = f"How do I get the weather for the site of host {uuid.uuid4().hex[:6]}?"
    first = ask(question)
    assert first.headers["x-aios-cache"] == "miss" and first.parse().choices[0].message.tool_calls
    deadline = time.monotonic() + 10
    while (again := ask(question)).headers["x-aios-cache"] != "hit":  # stored off the request path
        assert time.monotonic() < deadline, "the tool call was never cached"
        time.sleep(0.3)
    hit, missed = again.parse().choices[0].message.tool_calls, first.parse().choices[0].message.tool_calls
    assert [c.function for c in hit] == [c.function for c in missed]  # ids differ if a retry above missed and stored
    reworded = ask(question.replace("How do I", "How can I"))
    assert reworded.headers["x-aios-cache"] == "miss"  # never by meaning: arguments come from the exact words


def test_logprobs_come_back_token_by_token_streamed_or_not(client: openai.OpenAI) -> None:
    ask = [{"role": "user", "content": "Is the disk full? Answer yes or no."}]
    reply = client.chat.completions.create(model="sim/simple", messages=ask, logprobs=True, top_logprobs=2)
    choice = reply.choices[0]
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens) == choice.message.content
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in tokens)

    stream = client.chat.completions.create(model="sim/simple", messages=ask, logprobs=True, stream=True)
    chunks = [c for c in stream if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    streamed = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert text and "".join(t.token for t in streamed) == text


def test_models_lists_the_catalog_as_provider_slash_model(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list().data}
    assert {"auto", "sim/simple", "sim/medium", "sim/complex"} <= ids


def test_errors_come_back_in_openai_shape(asgi_server: str, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.chat.completions.create(model="acme/nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="auto", messages=[])
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}], temperature=7)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{asgi_server}/v1", api_key="aios_bad_token", max_retries=0).models.list()


def test_a_token_without_the_gateway_scope_is_refused(asgi_server: str) -> None:
    _, raw = token_create(user=make_user("viewer"), name="reader", scopes=["read"])
    c = openai.OpenAI(base_url=f"{asgi_server}/v1", api_key=raw, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x"}])


def test_a_failing_provider_falls_back_to_the_next_model(client: openai.OpenAI, settings: Any) -> None:
    from routing.models import ModelEndpoint, ProviderCredential
    from routing.secrets import encrypt
    from tests.routing.provider_server import ProviderServer, ScriptedResponse, fixture_response

    upstream = ProviderServer().start()
    try:
        ProviderCredential.objects.create(provider="openai_compatible", base_url=upstream.url,
                                          encrypted_key=encrypt("local-key"), key_hint="-key")  # fmt: skip
        ModelEndpoint.objects.create(provider="openai_compatible", model="flaky", tier="simple", priority=100)
        ModelEndpoint.objects.create(provider="openai_compatible", model="steady", tier="simple", priority=50)
        import time

        from routing import catalog

        catalog.endpoints.bump()
        catalog.credentials.bump()
        time.sleep(0.7)  # the server rechecks versions every AIOS_CONFIG_RECHECK_S (0.5 s in tests)
        assert "openai_compatible/flaky" in {m.id for m in client.models.list().data}  # reloaded
        server_error = ScriptedResponse(status=500, body={"error": {"message": "boom", "type": "server_error"}})
        upstream.enqueue(server_error, server_error, fixture_response("openai_success"))
        raw = client.chat.completions.with_raw_response.create(
            model="openai_compatible/flaky", messages=[{"role": "user", "content": "hello"}]
        )
    finally:
        upstream.stop()
    assert raw.headers["x-aios-model"] == "openai_compatible/steady"
    spans = [s for s in wait_for_spans(raw.headers["x-aios-trace-id"], 5) if s.kind == "llm"]
    assert sorted(s.status for s in spans) == ["error", "ok"]
    assert [r.path for r in upstream.requests] == ["/chat/completions"] * 3  # 2 tries, then the fallback
    decision = RoutingDecision.objects.get(trace_id=uuid.UUID(raw.headers["x-aios-trace-id"]))
    assert decision.chosen_model == "openai_compatible/flaky" and decision.alternatives == ["openai_compatible/steady"]


def _ask(client: openai.OpenAI, text: str, **kwargs: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], temperature=0, **kwargs
    )


def test_repeated_and_paraphrased_questions_come_back_from_the_cache(client: openai.OpenAI) -> None:
    import time

    question = f"How do I restart the nginx service on host {uuid.uuid4().hex[:6]}?"
    first = _ask(client, question)
    assert first.headers["x-aios-cache"] == "miss"
    time.sleep(1.5)  # stored after the answer, off the request path
    again = _ask(client, question)
    assert again.headers["x-aios-cache"] == "hit"
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert Decimal(again.headers["x-aios-cost-usd"]) == 0
    paraphrase = _ask(client, question.replace("How do I", "How can I"))
    assert paraphrase.headers["x-aios-cache"] == "semantic-hit"
    assert float(paraphrase.headers["x-aios-cache-similarity"]) > 0.9
    antonym = _ask(client, question.replace("restart", "stop"))
    assert antonym.headers["x-aios-cache"] == "miss"


def test_cache_control_and_sampling_bypass_the_cache(client: openai.OpenAI) -> None:
    import time

    question = f"List the open ports of server {uuid.uuid4().hex[:6]}."
    _ask(client, question)
    time.sleep(1.5)
    assert _ask(client, question, extra_headers={"Cache-Control": "no-store"}).headers["x-aios-cache"] == "bypass"
    assert _ask(client, question, extra_headers={"Cache-Control": "no-cache"}).headers["x-aios-cache"] == "miss"
    sampled = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": question}]
    )
    assert sampled.headers["x-aios-cache"] == "bypass"  # no temperature: OpenAI's default 1, not deterministic


def test_tenants_never_see_each_others_answers(asgi_server: str, client: openai.OpenAI) -> None:
    import time

    question = f"What is our VPN endpoint for office {uuid.uuid4().hex[:6]}?"
    _ask(client, question)
    time.sleep(1.5)
    _, other_token = token_create(user=make_user("operator"), name="other-app", scopes=["gateway"])
    other = openai.OpenAI(base_url=f"{asgi_server}/v1", api_key=other_token, max_retries=0)
    assert _ask(other, question).headers["x-aios-cache"] == "miss"


def test_a_per_request_ttl_expires_the_answer(client: openai.OpenAI) -> None:
    import time

    question = f"Which port does service {uuid.uuid4().hex[:6]} listen on?"
    _ask(client, question, extra_headers={"X-Aios-Cache-TTL": "2"})
    time.sleep(1.2)
    assert _ask(client, question).headers["x-aios-cache"] == "hit"
    time.sleep(2)
    assert _ask(client, question).headers["x-aios-cache"] == "miss"
    with pytest.raises(openai.BadRequestError):
        _ask(client, question, extra_headers={"X-Aios-Cache-TTL": "forever"})


def test_the_cache_page_and_its_live_data_need_a_role() -> None:
    from django.test import Client

    from tests.helpers import login

    assert Client().get("/cache/stats.json").status_code == 302
    viewer = login(make_user("viewer"))
    assert viewer.get("/cache/").status_code == 200
    data = viewer.get("/cache/stats.json").json()
    assert set(data) >= {"summary", "by_namespace", "series", "vector_search"}


def test_routing_constraints_travel_through_the_gateway(client: openai.OpenAI) -> None:
    prompt = [{"role": "user", "content": "Design a rollout plan and explain each step."}]
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=prompt, extra_body={"aios_constraints": {"max_latency_ms": 700}}
    )
    assert raw.headers["x-aios-model"] == "sim/medium"  # sim/complex typically takes 1,500 ms
    decision = wait_for_decision(raw.headers["x-aios-trace-id"])
    assert decision.constraints == {"max_latency_ms": 700} and decision.complexity == "complex"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="auto", messages=prompt, extra_body={"aios_constraints": {"max_cost_usd": "abc"}}
        )
    assert bad.value.body["param"] == "aios_constraints.max_cost_usd"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="auto", messages=prompt, n=2)
    assert refused.value.body["param"] == "n"


def _stream(client: openai.OpenAI, text: str, **kwargs: Any) -> tuple[Any, str]:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], temperature=0, stream=True, **kwargs
    )
    chunks = list(raw.parse())
    return raw, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_streamed_answers_go_through_the_cache(client: openai.OpenAI) -> None:
    import time

    question = f"Explain how to rotate the logs of service {uuid.uuid4().hex[:6]}."
    first, text = _stream(client, question)
    assert first.headers["x-aios-cache"] == "miss" and text.startswith("[simulated")
    time.sleep(1.5)  # stored after the stream ended, off the request path
    again, replayed = _stream(client, question)
    assert again.headers["x-aios-cache"] == "hit" and replayed == text
    spans = {s.kind: s for s in wait_for_spans(again.headers["x-aios-trace-id"], 2)}
    assert spans["cache"].attributes["aios.cache.result"] == "hit" and "llm" not in spans
    # A stream cut short by max_tokens (finish_reason "length") is never stored.
    cut = f"Explain how to rotate the keys of service {uuid.uuid4().hex[:6]}."
    assert _stream(client, cut, max_tokens=3)[0].headers["x-aios-cache"] == "miss"
    time.sleep(1.5)
    assert _stream(client, cut, max_tokens=3)[0].headers["x-aios-cache"] == "miss"


def test_the_cache_mode_header_chooses_a_mode_below_the_admins_ceiling(asgi_server: str) -> None:
    import time

    from routing.models import CachePolicy

    def app(name: str) -> openai.OpenAI:
        user = make_user("operator", username=f"mode-{uuid.uuid4().hex[:6]}")
        _, raw = token_create(user=user, name=name, scopes=["gateway"])
        if name == "locked":
            CachePolicy.objects.create(namespace=f"token:{user.username}:locked", mode="off")
        return openai.OpenAI(base_url=f"{asgi_server}/v1", api_key=raw, max_retries=0)

    def ask(c: openai.OpenAI, mode: str | None, **kwargs: Any) -> str:
        headers = {"X-Aios-Cache-Mode": mode} if mode else {}
        raw = c.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": question}], extra_headers=headers, **kwargs
        )
        return raw.headers["x-aios-cache"]

    question = f"Who is on call for cluster {uuid.uuid4().hex[:6]}?"
    free = app("free")
    assert ask(free, None) == "bypass"  # no temperature: OpenAI's default 1, not deterministic
    assert ask(free, "all") == "miss"
    time.sleep(1.5)
    assert ask(free, "all") == "hit"
    assert ask(free, "off", temperature=0) == "bypass"
    with pytest.raises(openai.BadRequestError) as bad:
        ask(free, "sometimes")
    assert bad.value.body["param"] == "x-aios-cache-mode"
    locked = app("locked")
    assert ask(locked, "all", temperature=0) == "bypass"  # an admin's "off" is a ceiling


def test_a_refresh_replaces_the_cached_answer_for_the_next_request(client: openai.OpenAI) -> None:
    import time

    question = f"Summarize the change log of release {uuid.uuid4().hex[:6]}."
    _ask(client, question)
    time.sleep(1.5)
    refreshed = _ask(client, question, extra_headers={"Cache-Control": "no-cache"})
    assert refreshed.headers["x-aios-cache"] == "miss"
    time.sleep(1.5)
    hit = _ask(client, question)
    assert hit.headers["x-aios-cache"] == "hit"
    # The simulator answers differently each time without a seed: the hit is the refreshed answer.
    assert hit.parse().choices[0].message.content == refreshed.parse().choices[0].message.content


def test_failed_upstream_calls_are_never_cached(client: openai.OpenAI) -> None:
    import time

    from routing import catalog
    from routing.models import ModelEndpoint, ProviderCredential
    from routing.secrets import encrypt
    from tests.routing.provider_server import ProviderServer, ScriptedResponse, fixture_response

    upstream = ProviderServer().start()
    try:
        ProviderCredential.objects.create(provider="openai_compatible", base_url=upstream.url,
                                          encrypted_key=encrypt("local-key"), key_hint="-key")  # fmt: skip
        ModelEndpoint.objects.create(provider="openai_compatible", model="broken", tier="simple", priority=100)
        catalog.endpoints.bump()
        catalog.credentials.bump()
        time.sleep(0.7)  # the server rechecks versions every AIOS_CONFIG_RECHECK_S (0.5 s in tests)
        assert "openai_compatible/broken" in {m.id for m in client.models.list().data}  # reloaded
        down = ScriptedResponse(status=500, body={"error": {"message": "boom", "type": "server_error"}})
        refused = ScriptedResponse(status=400, body={"error": {"message": "bad", "type": "invalid_request_error"}})
        upstream.enqueue(down, down, refused)
        ask = {"model": "openai_compatible/broken", "messages": [{"role": "user", "content": "status?"}],
               "temperature": 0}  # fmt: skip
        with pytest.raises(openai.InternalServerError):  # 502 after the retries
            client.chat.completions.create(**ask)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(**ask)
        time.sleep(1.5)
        upstream.enqueue(fixture_response("openai_success"))
        raw = client.chat.completions.with_raw_response.create(**ask)
    finally:
        upstream.stop()
    assert raw.headers["x-aios-cache"] == "miss" and raw.parse().choices[0].message.content
