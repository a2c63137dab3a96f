"""The oracle: any OpenAI-compatible endpoint (a vLLM server in deployment)."""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field

from seedcoder_assets import settings
from seedcoder_assets.core.quality.oracle import OracleSettings, check_reachable
from seedcoder_assets.core.quality.prompt import EXPLAINED_RATING_REGEX, RATING_ONLY_REGEX
from seedcoder_assets.core.web.prompt import ANSWER_ONLY_REGEX, EXPLAINED_ANSWER_REGEX

# The structured-output pattern per prompt: (with an explanation, answer only)
_REGEX = {"file": (EXPLAINED_RATING_REGEX, RATING_ONLY_REGEX), "web": (EXPLAINED_ANSWER_REGEX, ANSWER_ONLY_REGEX)}

NOT_CONFIGURED = (
    "No oracle endpoint is configured, so the oracle-dependent assets (quality/oracle_labels, web/web_oracle_labels, "
    "web/web_page_scores and what is built from them) cannot run. Point them at a server with SEEDCODER_ORACLE_URL (e.g. http://127.0.0.1:8000/v1) and "
    "SEEDCODER_ORACLE_MODEL (the served model name); start a local vLLM CPU server on a model folder with "
    "`seedcoder oracle serve --model /path/to/model` (see README: 'The oracle')."
)


class OracleResource(dg.ConfigurableResource):
    """Where the oracle is and how hard to push it. The API key is read from `api_key_env` at use time."""

    base_url: str = Field("", description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1 (empty: none)")
    model: str = Field("", description="Model name the server serves")
    api_key_env: str = Field("SEEDCODER_ORACLE_API_KEY", description="Environment variable holding the API key")
    timeout_s: float = Field(120.0, description="Per-request timeout")
    max_concurrency: int = Field(32, description="Requests in flight at once")
    max_retries: int = Field(5, description="Retries per request on timeouts, 429/5xx and dropped connections")
    backoff_s: float = Field(0.5, description="First retry delay; doubles per retry (with jitter)")
    temperature: float = Field(0.0, description="Sampling temperature (0: deterministic ratings)")
    max_tokens: int = Field(512, description="Reply budget: explanation plus rating")
    structured_output: Literal["vllm", "none"] = Field(
        "vllm", description="vllm: send `structured_outputs.regex` so replies end in 'Rating: [[X]]'; none: plain")
    explanation: bool = Field(True, description="Let the model explain before the rating (False: rating only)")
    api: Literal["chat", "completions"] = Field("chat", description="Which OpenAI endpoint to call")
    outage_window: int = Field(100, description="Requests over which the share of server failures is judged")
    outage_error_share: float = Field(0.8, description="Share of server failures (5xx, 429, timeouts, dropped "
                                                       "connections) in the window that stops the run; 4xx never count")

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    def settings(self, prompt: Literal["file", "web"] = "file") -> OracleSettings:
        """The client's settings for the A.2.1 file prompt or the web prompt (their answers differ)."""
        regex = None
        if self.structured_output == "vllm":
            regex = _REGEX[prompt][0 if self.explanation else 1]
        return OracleSettings(
            base_url=self.base_url, model=self.model, api_key=settings.secret(self.api_key_env),
            timeout_s=self.timeout_s, max_concurrency=self.max_concurrency, max_retries=self.max_retries,
            backoff_s=self.backoff_s, temperature=self.temperature, max_tokens=self.max_tokens,
            structured_regex=regex, api=self.api, outage_window=self.outage_window,
            outage_error_share=self.outage_error_share)

    def require(self, prompt: Literal["file", "web"] = "file") -> OracleSettings:
        """Settings of a reachable oracle, or a dg.Failure that says how to configure one."""
        if not self.configured:
            raise dg.Failure(description=NOT_CONFIGURED)
        settings = self.settings(prompt)
        problem = check_reachable(settings)
        if problem:
            raise dg.Failure(description=f"The oracle is configured but not usable: {problem}. {NOT_CONFIGURED}")
        return settings
