"""The body of POST /v1/responses, as jaif accepts it (a pydantic mirror of OpenAI's ResponseCreateParams).

Every parameter OpenAI defines that jaif cannot honour is refused with a 400 naming it (``refused``), and
so is every parameter OpenAI does not define: nothing a client sends is silently ignored. ``input`` items
and ``tools`` are checked one by one where they are translated (translate.py), so that an error names
the item (``input[2].type``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jaif.errors import InvalidRequest
from jaif.inference.protocol import Flag, TokenCount

# Built-in tools of OpenAI's platform: jaif runs none of them.
BUILTIN_TOOLS = frozenset({
    "web_search", "web_search_preview", "web_search_preview_2025_03_11", "web_search_2025_08_26", "file_search",
    "computer_use_preview", "computer_use", "code_interpreter", "image_generation", "mcp", "local_shell", "shell",
    "apply_patch", "custom",
})  # fmt: skip


class ResponseStreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # jaif never pads delta events with an `obfuscation` field: either value is honoured.
    include_obfuscation: Flag | None = None


class ResponseCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=200)]
    input: str | Annotated[list[dict[str, Any]], Field(min_length=1, max_length=2048)]
    instructions: str | None = None
    max_output_tokens: TokenCount | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stream: Flag | None = False
    stream_options: ResponseStreamOptions | None = None
    store: Flag | None = True
    previous_response_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    tools: Annotated[list[dict[str, Any]], Field(max_length=128)] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: Flag | None = None
    metadata: Annotated[dict[str, Annotated[str, Field(max_length=512)]], Field(max_length=16)] | None = None
    user: str | None = None
    text: dict[str, Any] | None = None
    truncation: Literal["disabled"] | None = None
    # Accepted only where they ask for nothing jaif cannot do (``refused``).
    reasoning: dict[str, Any] | None = None
    background: Flag | None = None
    include: list[str] | None = None
    service_tier: Literal["auto", "default"] | None = None

    def refused(self) -> None:
        """Raise InvalidRequest naming the first parameter jaif cannot honour."""
        unknown = sorted(self.model_extra or {})
        if unknown:
            names = ", ".join(f"'{name}'" for name in unknown)
            raise InvalidRequest(
                f"Unsupported parameter{'s' if len(unknown) > 1 else ''}: {names} (not supported by this gateway's "
                "Responses API).",
                param=unknown[0],
                code="unsupported_parameter",
            )
        if self.background:
            raise InvalidRequest(
                "Background responses are not supported: leave 'background' unset or false.",
                param="background", code="unsupported_parameter",
            )  # fmt: skip
        if self.reasoning and any(value is not None for value in self.reasoning.values()):
            raise InvalidRequest(
                f"Reasoning options are not supported for the model `{self.model}`.",
                param="reasoning", code="unsupported_parameter",
            )  # fmt: skip
        if self.include:
            raise InvalidRequest(
                f"Unsupported value for 'include': {self.include[0]!r} (no additional output data is available).",
                param="include", code="unsupported_value",
            )  # fmt: skip
