"""The body of `POST /v1/chat/completions`, validated at the edge (pydantic, strict types).

Every field OpenAI's Chat Completions API defines is either honoured or refused with a 400 that
names it: a parameter the gateway dropped silently would change the answer without telling anyone,
and the cache would key two different requests alike.

- Honoured and sent upstream: model, messages (every field of a message, `name`, `tool_calls` and
  `tool_call_id` included), temperature, top_p, max_tokens / max_completion_tokens, stop, seed,
  stream, stream_options, n (1 only), frequency_penalty, presence_penalty, logit_bias,
  response_format, user, tools (function tools), tool_choice, parallel_tool_calls, logprobs,
  top_logprobs. Providers that cannot honour one of these are not routed to
  (routing.providers.registry.unsupported_params).
- Refused: the deprecated `functions` / `function_call` (use tools), n > 1, and any field this
  model does not know.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Parameters that change the answer beyond the core sampling ones, sent upstream as `ChatRequest.extra`.
ANSWER_EXTRAS = (
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "logprobs",
    "top_logprobs",
)
# Parameters that are passed on but do not change the answer (not in the cache key).
PASS_THROUGH = ("user",)
# Fields OpenAI defines whose results the gateway cannot return yet: a clear 400 when used.
REFUSED = {
    "functions": "the deprecated `functions` is not supported: send `tools`",
    "function_call": "the deprecated `function_call` is not supported: send `tool_choice`",
}

_ROLES = Literal["system", "developer", "user", "assistant", "tool"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ContentPart(BaseModel):
    # Parts carry type-specific fields (text, image_url, input_audio, file): kept as sent.
    model_config = ConfigDict(strict=True, extra="allow")
    type: str


class Message(BaseModel):
    # Assistant messages read back from an SDK carry extra keys (refusal, audio, annotations):
    # they are kept and sent upstream as they are, and count in the cache key.
    model_config = ConfigDict(strict=True, extra="allow")
    role: _ROLES
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ResponseFormat(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")  # future fields go upstream as sent
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class RoutingConstraints(_Strict):
    """`aios_constraints`: what the router must honour when it picks a model."""

    max_cost_usd: Annotated[float, Field(ge=0)] | None = None
    max_latency_ms: Annotated[int, Field(ge=1)] | None = None
    requires_vision: bool = False
    min_context_tokens: Annotated[int, Field(ge=1)] | None = None


class ChatCompletionBody(_Strict):
    model: Annotated[str, Field(min_length=1)] = "auto"
    messages: Annotated[list[Message], Field(min_length=1)]
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: Annotated[int, Field(ge=0)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None
    aios_constraints: RoutingConstraints | None = None
    tools: Annotated[list[Tool], Field(max_length=128)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    # Refused when set to anything but their "off" value (see REFUSED).
    functions: list[Any] | None = None
    function_call: Any = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None

    @field_validator("functions", "function_call")
    @classmethod
    def _refused(cls, value: Any, info: Any) -> Any:
        if value not in (None, False, [], "none"):
            raise ValueError(REFUSED[info.field_name])
        return value

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> ChatCompletionBody:
        names = {tool.function.name for tool in self.tools or ()}
        if self.tool_choice not in (None, "none") and not names:
            raise BodyError("tool_choice: there are no tools to choose from", "tool_choice")
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.function.name not in names:
            raise BodyError(f"tool_choice: no tool is named {self.tool_choice.function.name!r}", "tool_choice")
        if self.top_logprobs is not None and not self.logprobs:
            raise BodyError("top_logprobs: needs logprobs: true", "top_logprobs")
        return self

    def extras(self) -> dict[str, Any]:
        """The pass-through parameters that were set, in OpenAI's names and shapes."""
        out: dict[str, Any] = {}
        for name in (*ANSWER_EXTRAS, *PASS_THROUGH):
            value = getattr(self, name)
            if name in ("tools", "tool_choice", "parallel_tool_calls") and not self.tools:
                continue  # without tools these ask for nothing (and OpenAI refuses them alone)
            if name == "logprobs" and not value:
                continue  # `logprobs: false` (the OpenAI SDK's default in some versions) asks for nothing
            if value is not None:
                out[name] = _plain(value)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


class BodyError(ValueError):
    """The body is invalid: `param` names the field (OpenAI's style: `messages[0].role`)."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


def _param(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[ContentPart]", "list[str]", "constrained-list"):
            continue  # pydantic names the union branch it tried; the caller's field is the one before it
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_body(body: Any) -> ChatCompletionBody:
    if not isinstance(body, dict):
        raise BodyError("the body must be a JSON object", None)
    try:
        return ChatCompletionBody.model_validate(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        original = (error.get("ctx") or {}).get("error")
        if isinstance(original, BodyError):  # a check across fields names its own field
            raise original from exc
        param = _param(tuple(error["loc"])) or None
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown or unsupported parameter"
        raise BodyError(f"{param}: {message}" if param else message, param) from exc
