"""Which model drafts: the offline one, or any OpenAI-compatible endpoint (OpenAI, Azure, vLLM,
Ollama, a LiteLLM proxy) through the real `openai` client.

An async HTTP client belongs to the event loop it was made on. A worker process runs its agent
runs on one long-lived loop (`worker.runs`), which registers itself with `share_clients`: runs on
it share one client per model configuration, and its connections. A run on a loop of its own (a
command, a test) gets a client for the run, closed when the run ends. The TLS context with its
trust store is made once per process."""

from __future__ import annotations

import asyncio
import functools
import ssl
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from mailagent.agent.offline import NAME as OFFLINE_NAME
from mailagent.agent.offline import OfflineModel
from mailagent.config import Model as ModelConfig
from mailagent.config import Settings, secret


def model_name(settings: Settings) -> str:
    return OFFLINE_NAME if settings.model.provider == "offline" else settings.model.name


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ModelConfig, AsyncOpenAI]] = \
    weakref.WeakKeyDictionary()


def share_clients(loop: asyncio.AbstractEventLoop) -> None:
    """Runs on `loop` share their clients for as long as it lives."""
    _shared.setdefault(loop, {})


def _client(cfg: ModelConfig) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=cfg.base_url, api_key=secret("model.api_key_env", cfg.api_key_env),
        timeout=cfg.timeout_seconds, max_retries=cfg.max_retries,
        http_client=DefaultAsyncHttpxClient(verify=_tls(), timeout=cfg.timeout_seconds),
    )


@asynccontextmanager
async def openai_client(settings: Settings) -> AsyncIterator[AsyncOpenAI]:
    """A client for the configured OpenAI-compatible endpoint (for runs, judges, classifiers and
    exports): the loop's shared one, or one closed when the block ends."""
    cfg = settings.model
    shared = _shared.get(asyncio.get_running_loop())
    if shared is not None:
        if cfg not in shared:
            shared[cfg] = _client(cfg)
        yield shared[cfg]
        return
    client = _client(cfg)
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def model_for_run(settings: Settings) -> AsyncIterator[Model]:
    cfg = settings.model
    if cfg.provider == "offline":
        agent = settings.agent
        yield OfflineModel(sign_off=agent.sign_off, docs_url=agent.docs_url, status_page=agent.status_page,
                           company=agent.company, sign_offs=dict(agent.sign_offs))
        return
    async with openai_client(settings) as client:
        yield _model(cfg, client)


def _model(cfg: ModelConfig, client: AsyncOpenAI) -> Model:
    if cfg.api == "responses":
        return OpenAIResponsesModel(model=cfg.name, openai_client=client)
    return OpenAIChatCompletionsModel(model=cfg.name, openai_client=client)
