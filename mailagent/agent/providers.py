"""Which model drafts: the offline one, or any OpenAI-compatible endpoint (OpenAI, Azure, vLLM,
Ollama, a LiteLLM proxy) through the real `openai` client.

A client is made per run: runs execute in worker threads, each with its own event loop, and an
async HTTP client belongs to the loop it was made on."""

from __future__ import annotations

from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI

from ..config import Settings, secret
from .offline import NAME as OFFLINE_NAME
from .offline import OfflineModel


def model_name(settings: Settings) -> str:
    return OFFLINE_NAME if settings.model.provider == "offline" else settings.model.name


def make_model(settings: Settings) -> Model:
    cfg = settings.model
    if cfg.provider == "offline":
        return OfflineModel(sign_off=settings.agent.sign_off, docs_url=settings.agent.docs_url,
                            status_page=settings.agent.status_page)
    client = AsyncOpenAI(
        base_url=cfg.base_url, api_key=secret("model.api_key_env", cfg.api_key_env),
        timeout=cfg.timeout_seconds, max_retries=cfg.max_retries,
    )
    if cfg.api == "responses":
        return OpenAIResponsesModel(model=cfg.name, openai_client=client)
    return OpenAIChatCompletionsModel(model=cfg.name, openai_client=client)
