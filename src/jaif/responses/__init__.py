"""The Responses API (/v1/responses), translated onto the gateway's chat completions (docs/responses.md)."""
