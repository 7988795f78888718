"""The support agent: model, tools, instructions, guardrails and tracing around one draft."""
