"""Azure OpenAI: OpenAI's protocol behind an Azure resource's deployments.

A key derived from :class:`~llmkit_providers.openai.OpenAICompatible`; it
shares OpenAI's codec and differs in three things:

* the URL: ``{endpoint}/openai/deployments/{deployment}/chat/completions
  ?api-version={version}``. The endpoint is ``api_base`` or
  ``AZURE_OPENAI_ENDPOINT`` (there is no default: a call without either
  fails before sending, naming the variable). The deployment is the model
  name unless ``options={"deployment": ...}`` names one. The version is
  ``options={"api_version": ...}``, else ``AZURE_OPENAI_API_VERSION``,
  else :data:`DEFAULT_API_VERSION`. (``api_base`` may not carry a query,
  so the codec adds ``api-version`` itself.)
* auth: the key from ``AZURE_OPENAI_API_KEY`` (or ``api_key=``) goes in the
  ``api-key`` header; a Microsoft Entra ID token goes in ``Authorization:
  Bearer``. Pass a token callable as ``token_provider=`` (returning the
  token, or ``(token, expires_at)`` to have it kept until a minute before
  it expires); a token is told from a key by its shape, a JSON Web Token
  (``eyJ...`` in three dot-separated parts), which Azure keys never are.
* content filtering: a prompt the filter stops is answered ``400`` with
  code ``content_filter``, raised as :class:`~llmkit.ContentFilterError`;
  a completion it cuts finishes with ``content_filter``. The filter's
  results are kept in ``provider_data["azure"]`` (``prompt_filter_results``,
  ``content_filter_results``).

As on OpenAI, the o-series and gpt-5 models take ``max_completion_tokens``:
``max_tokens`` is sent under that name for them (the deployment's model
name decides, so name deployments after their model).
"""

from __future__ import annotations

import os
from typing import Any, Final
from urllib.parse import quote

import msgspec

from llmkit.provider import (
    Capabilities,
    ChatRequest,
    Config,
    InvalidRequestError,
    encode_request,
)
from llmkit_providers.openai import OpenAICompatible, build_headers, encode_openai_request

__all__ = ["DEFAULT_API_VERSION", "AzureOpenAI", "AzureOptions"]

DEFAULT_API_VERSION: Final = "2024-10-21"
"""The api-version sent when neither the options nor ``AZURE_OPENAI_API_VERSION`` give one.

The latest generally available version of Azure OpenAI's data-plane
inference API (it takes ``max_completion_tokens`` and ``stream_options``).
"""

_VERSION_ENV: Final = "AZURE_OPENAI_API_VERSION"


class AzureOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Azure OpenAI's provider options.

    Attributes:
        deployment: the deployment to call; the model name by default.
        api_version: the ``api-version``; by default ``AZURE_OPENAI_API_VERSION``,
            else :data:`DEFAULT_API_VERSION`.
    """

    deployment: str | None = None
    api_version: str | None = None


class AzureOpenAI(OpenAICompatible):
    """Azure OpenAI deployments; the key and endpoint from ``AZURE_OPENAI_*`` variables."""

    __slots__ = ()
    name = "azure"
    # No default: every resource has its own endpoint.
    default_base_url = ""
    base_url_env = "AZURE_OPENAI_ENDPOINT"
    api_key_env = "AZURE_OPENAI_API_KEY"
    auth_header = "api-key"
    auth_prefix = ""
    request_id_headers = ("apim-request-id", "x-request-id", "x-ms-request-id")
    options_type = AzureOptions
    max_completion_tokens_models = ("o1", "o3", "o4", "gpt-5")
    # Image parts yes; OpenAI's file parts are not taken by the GA api-version.
    base_capabilities = Capabilities(
        streaming=True,
        tools=True,
        parallel_tool_calls=True,
        vision=True,
        json_mode=True,
        json_schema=True,
    )
    choice_data_fields = ("content_filter_results",)
    response_data_fields = ("prompt_filter_results",)


def _is_token(secret: str) -> bool:
    # Entra ID access tokens are JWTs; Azure's keys are 32 hex digits or
    # 84 letters and digits, never with dots.
    return secret.startswith("eyJ") and secret.count(".") == 2


def _segment(value: str, what: str) -> str:
    """``value`` quoted for a URL path segment or query value.

    Raises:
        InvalidRequestError: ``value`` is empty.
    """
    if not value.strip():
        raise InvalidRequestError(
            f"azure needs a {what}: pass a model name or options={{'deployment': ...}}",
            provider="azure",
        )
    return quote(value, safe="")


def _url(key: AzureOpenAI, request: ChatRequest, config: Config) -> str:
    """The deployment URL of ``request``, its ``api-version`` in the query.

    Raises:
        InvalidRequestError: no endpoint, or an empty deployment or version.
    """
    if not config.api_base:
        raise InvalidRequestError(
            f"azure needs an endpoint: set {key.base_url_env} (e.g. "
            "https://my-resource.openai.azure.com) or pass api_base=",
            provider=key.name,
        )
    options = config.options
    deployment = getattr(options, "deployment", None) or request.model
    # Read here: the framework fills only the key and the base URL from the
    # environment; the version is a provider option with a variable of its own.
    version = (
        getattr(options, "api_version", None)
        or os.environ.get(_VERSION_ENV, "").strip()
        or DEFAULT_API_VERSION
    )
    return (
        f"{config.api_base}/openai/deployments/{_segment(deployment, 'deployment')}"
        f"/chat/completions?api-version={_segment(version, 'api-version')}"
    )


def _headers(key: AzureOpenAI, request: ChatRequest, config: Config) -> dict[str, str]:
    secret = config.api_key
    if secret is None or not _is_token(secret):
        return build_headers(key, request, config)
    # An Entra ID token: Bearer, not api-key (an Authorization header of the
    # config or the request still wins, as for every provider).
    headers = build_headers(key, request, msgspec.structs.replace(config, api_key=None))
    if not any(name.lower() == "authorization" for name in headers):
        headers["Authorization"] = "Bearer " + secret
    return headers


@encode_request.dispatch
def _encode(key: AzureOpenAI, request: ChatRequest, config: Config) -> Any:
    return encode_openai_request(
        key,
        request,
        config,
        url=_url(key, request, config),
        headers=_headers(key, request, config),
    )
