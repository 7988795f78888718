"""Which model drafts: the offline one, or any OpenAI-compatible endpoint (OpenAI, Azure, vLLM,
Ollama, a LiteLLM proxy) through the real `openai` client.

Runs execute in worker threads, each on an event loop of its own, and an async HTTP client
belongs to the loop it was made on: so a client is made per run and closed when the run ends.
What is costly to make — the TLS context with its trust store — is made once per process."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from mailagent.agent.offline import NAME as OFFLINE_NAME
from mailagent.agent.offline import OfflineModel
from mailagent.config import Settings, secret


def model_name(settings: Settings) -> str:
    return OFFLINE_NAME if settings.model.provider == "offline" else settings.model.name


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


@asynccontextmanager
async def openai_client(settings: Settings) -> AsyncIterator[AsyncOpenAI]:
    """A client for the configured OpenAI-compatible endpoint, closed when the block ends."""
    cfg = settings.model
    client = AsyncOpenAI(
        base_url=cfg.base_url, api_key=secret("model.api_key_env", cfg.api_key_env),
        timeout=cfg.timeout_seconds, max_retries=cfg.max_retries,
        http_client=DefaultAsyncHttpxClient(verify=_tls(), timeout=cfg.timeout_seconds),
    )
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def model_for_run(settings: Settings) -> AsyncIterator[Model]:
    cfg = settings.model
    if cfg.provider == "offline":
        yield OfflineModel(sign_off=settings.agent.sign_off, docs_url=settings.agent.docs_url,
                           status_page=settings.agent.status_page)
        return
    async with openai_client(settings) as client:
        if cfg.api == "responses":
            yield OpenAIResponsesModel(model=cfg.name, openai_client=client)
        else:
            yield OpenAIChatCompletionsModel(model=cfg.name, openai_client=client)
