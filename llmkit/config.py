"""Per-call configuration: keys, endpoints, timeouts, retries, HTTP clients.

Users pass a dict or a :class:`Config`; unknown fields are refused with the
field's name. :func:`resolve_config` fills what the user left out from the
provider key (base URL) and the environment (API key), once per call.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from llmkit._checks import has_surrogate, header_problem
from llmkit.errors import AuthenticationError, InvalidRequestError
from llmkit.keys import ProviderKey

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_RETRIES",
    "HTTP_BACKENDS",
    "HTTP_BACKEND_VARIABLE",
    "MAX_RETRIES",
    "MAX_SECONDS",
    "SECRET_HEADERS",
    "Config",
    "auth_headers",
    "resolve_config",
    "secret_header_names",
    "to_config",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 600.0
DEFAULT_RETRIES = 2
# Upper bounds, so a typo (or 1e300) fails here and not as an OverflowError
# deep in the socket layer: a day for any timeout, a hundred retries.
MAX_SECONDS = 86_400.0
MAX_RETRIES = 100
# The HTTP libraries the transport can send with (httpx2 is the optional
# extra llmkit[httpx2]), and the variable that picks one for a whole process.
HTTP_BACKENDS = ("httpx", "httpx2")
HTTP_BACKEND_VARIABLE = "LLMKIT_HTTP_BACKEND"


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach a provider.

    Attributes:
        api_key: the key; defaults to the provider's environment variable.
        api_base: base URL; defaults to the provider's public endpoint.
        timeout: idle read timeout in seconds (between bytes of a stream), 600 by default.
        connect_timeout: seconds to open a connection, 5 by default.
        deadline: total seconds for the call, retries and waits included; none by default.
        headers: extra HTTP headers sent with every request.
        retries: how many times a retryable failure is retried (2 by default).
        http_client: an ``httpx.Client`` to use instead of llmkit's pooled one.
        async_http_client: an ``httpx.AsyncClient`` for the async calls.
        token_provider: a callable giving the key when ``api_key`` is not
            set: a string, or ``(token, expires_at)`` with ``expires_at`` in
            epoch seconds, in which case the token is kept until a minute
            before it expires (Entra ID, OAuth).
        options: provider-specific settings (region, ``api_version``,
            deployment...), as a dict or the provider's options struct; the
            provider's ``options_type`` validates them.
        transport: an ``llmkit.Transport`` to send with (its own pools and
            attempt listener) instead of the process-wide one.
        http_backend: the HTTP library of llmkit's pooled clients: ``"httpx"``
            (the default) or ``"httpx2"`` (``pip install llmkit[httpx2]``);
            by default the ``LLMKIT_HTTP_BACKEND`` environment variable, else
            httpx. An injected client's library is used whatever this says.
    """

    api_key: str | None = None
    api_base: str | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    deadline: float | None = None
    headers: dict[str, str] | None = None
    retries: int | None = None
    http_client: Any = None
    async_http_client: Any = None
    token_provider: Any = None
    options: Any = None
    transport: Any = None
    http_backend: str | None = None

    def __post_init__(self) -> None:
        # msgspec checks types when converting a dict, not when the class is
        # called directly; check here so both ways fail early and alike.
        for name in ("timeout", "connect_timeout", "deadline"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                # not (0 < x <= max) is also true for NaN, which compares false.
                or not 0 < value <= MAX_SECONDS
            ):
                raise InvalidRequestError(
                    f"config {name} must be a number of seconds above 0 and at most "
                    f"{MAX_SECONDS:,.0f}, not {_shown_value(value)}"
                )
        retries = self.retries
        if retries is not None and (
            isinstance(retries, bool)
            or not isinstance(retries, int)
            or not 0 <= retries <= MAX_RETRIES
        ):
            raise InvalidRequestError(
                f"config retries must be a whole number from 0 to {MAX_RETRIES}, "
                f"not {_shown_value(retries)}"
            )
        api_key = self.api_key
        if api_key is not None:
            if type(api_key) is not str:
                # The value is not shown: it may be a credential of another type.
                raise InvalidRequestError(
                    f"config api_key must be a string, not {type(api_key).__name__}"
                )
            if not _header_safe(api_key.strip()):
                # The same error as a bad key from the environment gets.
                raise AuthenticationError(
                    "the API key holds spaces, line breaks or non-ASCII characters; "
                    "check the value you pass as api_key="
                )
        if self.api_base is not None:
            _check_api_base(self.api_base)
        if self.token_provider is not None:
            if not callable(self.token_provider):
                raise InvalidRequestError(
                    "config token_provider must be a callable returning the key, not "
                    f"{type(self.token_provider).__name__}"
                )
            if api_key is not None:
                raise InvalidRequestError(
                    "config has both api_key and token_provider; pass one of them"
                )
        backend = self.http_backend
        if backend is not None and backend not in HTTP_BACKENDS:
            raise InvalidRequestError(
                f"config http_backend must be 'httpx' or 'httpx2', not {_shown_value(backend)}"
            )
        options = self.options
        if not (options is None or isinstance(options, dict | msgspec.Struct)):
            raise InvalidRequestError(
                "config options must be a dict of provider options (or the provider's "
                f"options struct), not {type(options).__name__}"
            )
        headers: object = self.headers
        if headers is not None and type(headers) is not _CheckedHeaders:
            if not isinstance(headers, Mapping):
                raise InvalidRequestError(
                    f"config headers must be a dict of header names to values, "
                    f"not {type(headers).__name__}"
                )
            try:
                own = dict(headers)
            except Exception as exc:
                raise InvalidRequestError(
                    f"config headers could not be read ({type(exc).__name__}); pass a plain dict"
                ) from None
            for header, text in own.items():
                problem = header_problem(header, text, "config header")
                if problem is not None:
                    raise InvalidRequestError(problem)
            # A read-only copy: what was checked is what is sent, even if the
            # caller changes their dict later. Replacing a Config (as every
            # call does) keeps the copy and skips these checks.
            msgspec.structs.force_setattr(self, "headers", _CheckedHeaders(own))

    def _shown(self) -> list[tuple[str, Any]]:
        # The key must never reach a log line: repr shows only that it is set,
        # and headers that carry credentials show their names only.
        shown: list[tuple[str, Any]] = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "api_key":
                value = "***"
            elif name == "headers":
                value = {k: "***" if k.lower() in SECRET_HEADERS else v for k, v in value.items()}
            elif name in ("token_provider", "options"):
                # Either may close over or hold credentials (a client secret,
                # cloud keys): only its kind is shown.
                value = _Masked(f"<{type(value).__name__}>")
            shown.append((name, value))
        return shown

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{name}={value!r}" for name, value in self._shown()) + ")"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec's own rich repr would print the key; rich tracebacks call this.
        return self._shown()


class _CheckedHeaders(Mapping[str, str]):
    """Headers that passed the checks: read-only, and only llmkit makes them.

    (A ``MappingProxyType`` would do, but a caller could pass one of their
    own and skip the checks.)
    """

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)


class _Masked(str):
    """A placeholder that reprs as itself, unquoted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


def _shown_value(value: Any) -> str:
    # Bounded: a huge int's repr is thousands of digits (and slow to build).
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**12:
        return "a number that large"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_api_base(api_base: Any) -> None:
    """Refuse an ``api_base`` that is not a plain http(s) URL.

    Raises:
        InvalidRequestError: not a string, not http(s), odd characters, or
            credentials in the URL (the message never repeats them).
    """
    if type(api_base) is not str:
        raise InvalidRequestError(
            f"config api_base must be a string URL, not {type(api_base).__name__}"
        )
    if api_base in _checked_bases:
        return
    if not api_base[:8].lower().startswith(("http://", "https://")):
        raise InvalidRequestError(
            f"api_base must start with http:// or https://, not {_shown_value(api_base)}"
        )
    authority = api_base.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in authority:
        host = authority.rsplit("@", 1)[1]
        # httpx would send user:password as Basic auth instead of the key, and log it.
        raise InvalidRequestError(
            f"api_base for {host!r} holds credentials (user:password@); remove them and "
            "pass the key as api_key= or a header in headers="
        )
    if "?" in api_base or "#" in api_base:
        # The codec appends its path ("/chat/completions") to the base, which
        # would land inside the query or be dropped with the fragment.
        raise InvalidRequestError(
            f"api_base for {authority!r} holds a query (?...) or a fragment (#...); "
            "pass only scheme, host, port and path"
        )
    after_host = authority.rsplit("]", 1)[-1]  # past an IPv6 literal's colons
    port = after_host.rpartition(":")[2] if ":" in after_host else "443"
    if not (len(port) <= 5 and port.isdigit() and port.isascii() and 0 < int(port) < 65_536):
        raise InvalidRequestError(
            f"api_base for {authority!r} has a port that is not a number from 1 to 65535"
        )
    # Runs on every call (resolve_config replaces the struct): C-level tests only.
    if not api_base.isprintable() or " " in api_base or has_surrogate(api_base):
        raise InvalidRequestError(
            f"api_base for {authority!r} holds spaces, control characters or lone "
            "surrogates; percent-encode them"
        )
    if len(_checked_bases) < 256:
        _checked_bases[api_base] = None


# resolve_config rebuilds the Config (and so reruns these checks) on every
# call; the few base URLs a process uses are checked once.
_checked_bases: dict[str, None] = {}


_EMPTY = Config()
# Headers that carry credentials: masked in reprs, scrubbed from error messages.
SECRET_HEADERS = frozenset(
    {
        "api-key",
        "authorization",
        "cookie",
        "ocp-apim-subscription-key",
        "proxy-authorization",
        "x-api-key",
        "x-auth-token",
        "x-goog-api-key",
    }
)


def to_config(config: Config | Mapping[str, Any] | None) -> Config:
    """Return ``config`` as a :class:`Config`.

    Raises:
        InvalidRequestError: an unknown field or a value of the wrong type.
    """
    if config is None:
        return _EMPTY
    if isinstance(config, Config):
        return config
    if not isinstance(config, Mapping):
        raise InvalidRequestError(
            f"config must be a dict or a Config, not {type(config).__name__}; "
            'pass e.g. {"api_key": "...", "timeout": 30}'
        )
    try:
        return msgspec.convert(dict(config), Config)
    except msgspec.ValidationError as exc:
        known = ", ".join(Config.__struct_fields__)
        raise InvalidRequestError(f"invalid config: {exc}. Config fields are: {known}") from None
    except UnicodeError:
        # msgspec fails to quote a bad value holding a lone surrogate; the
        # value is not shown here either (it may be the key).
        raise InvalidRequestError(
            "invalid config: a value holds a lone surrogate (half of a UTF-16 pair)"
        ) from None
    except TypeError as exc:
        raise InvalidRequestError(f"config must be a dict or a Config: {exc}") from None


def _header_safe(token: str) -> bool:
    # isprintable() is False for line breaks, tabs and other controls; a space
    # is printable, so it is looked for apart. All three checks run in C.
    return token.isascii() and token.isprintable() and " " not in token


def _clean_key(key: ProviderKey, api_key: str, where: str) -> str:
    # A key read from a file often ends in a newline; anything else odd is refused
    # here, before it can reach an HTTP header (and the header's error message).
    # ``where`` names the key's source for the fix: its variable, or token_provider.
    stripped = api_key.strip()
    if not _header_safe(stripped):
        raise AuthenticationError(
            f"the API key for {key.name} holds spaces, line breaks or non-ASCII "
            f"characters; check {where}",
            provider=key.name,
        )
    return stripped


def _key_from_environment(key: ProviderKey) -> tuple[str, str | None]:
    """The first key variable that is set, and its value (the primary one if none is)."""
    names = key.key_variables()
    for name in names:
        value = os.environ.get(name)
        if value:
            return name, value
    return names[0], None


def _base_from_environment(key: ProviderKey, name: str) -> str | None:
    """The base URL from ``key.base_url_env``, checked like ``api_base``.

    Raises:
        InvalidRequestError: the variable is unset and the key has no default
            (the message names it), or its value is not a plain http(s) URL.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        if key.default_base_url:
            return None
        raise InvalidRequestError(
            f"{key.name} needs an endpoint: set {name} (e.g. https://example.com) or pass "
            "api_base=",
            provider=key.name,
        )
    # The key knows its variable's forms (OLLAMA_HOST is often host:port alone).
    base = key.base_url_from_env(value).rstrip("/") + key.base_url_env_path
    try:
        _check_api_base(base)
    except InvalidRequestError as exc:
        raise InvalidRequestError(f"{name}: {exc}", provider=key.name) from None
    return base


def _variables(key: ProviderKey) -> str:
    first, *rest = key.key_variables()
    return first + (f" (or {', '.join(rest)})" if rest else "")


def resolve_config(key: ProviderKey, config: Config) -> Config:
    """Fill the API key and base URL that ``config`` leaves out.

    Raises:
        AuthenticationError: the provider needs a key and none was given or
            found in its environment variables (the message names them),
            or the key holds characters no HTTP header can carry.
        InvalidRequestError: ``api_base`` is not an http(s) URL.
    """
    api_key = config.api_key
    api_base = config.api_base
    source = "api_key="
    if api_key is None and config.token_provider is not None:
        api_key = _token(key, config.token_provider)
        source = "the token_provider"
    if api_key is None and key.api_key_env is not None:
        source, api_key = _key_from_environment(key)
        if not api_key:
            raise AuthenticationError(
                f"No API key for {key.name}: set {_variables(key)} or pass api_key=",
                provider=key.name,
            )
    if api_key is not None:
        api_key = _clean_key(key, api_key, source)
        if not api_key:
            if key.api_key_env is not None:
                # Sent as it is, an empty key makes an unauthenticated request.
                raise AuthenticationError(
                    f"the API key for {key.name} is empty; set {_variables(key)} or pass api_key=",
                    provider=key.name,
                )
            api_key = None
    if api_base is None and key.base_url_env is not None:
        api_base = _base_from_environment(key, key.base_url_env)
    if api_base is None and key.default_base_url:
        # A key without a default leaves it None: its codec builds whole URLs.
        api_base = key.default_base_url
    if api_base is not None and api_base.endswith("/"):
        api_base = api_base.rstrip("/")
    options = config.options
    if options is not None:
        options = _checked_options(key, options)
    if api_key is config.api_key and api_base is config.api_base and options is config.options:
        return config
    # The resolved config holds the token itself: the callable has been used.
    return msgspec.structs.replace(
        config, api_key=api_key, api_base=api_base, options=options, token_provider=None
    )


def _checked_options(key: ProviderKey, options: Any) -> Any:
    """Return ``options`` as ``key.options_type``.

    Raises:
        InvalidRequestError: the provider takes no options, or one is unknown
            or of the wrong type (the message names it and the known ones).
    """
    kind = key.options_type
    if kind is None:
        if isinstance(options, dict) and not options:
            return None
        names = options.__struct_fields__ if isinstance(options, msgspec.Struct) else options
        raise InvalidRequestError(
            f"{key.name} takes no provider options; remove options= "
            f"(got {', '.join(map(ascii, sorted(map(str, names))))})",
            provider=key.name,
        )
    if type(options) is kind:
        return options
    if not isinstance(options, dict):
        raise InvalidRequestError(
            f"options for {key.name} must be a dict or {kind.__name__}, "
            f"not {type(options).__name__}",
            provider=key.name,
        )
    try:
        return msgspec.convert(options, kind)
    except (msgspec.ValidationError, UnicodeError) as exc:
        known = ", ".join(kind.__struct_fields__) or "none"
        what = str(exc) if isinstance(exc, msgspec.ValidationError) else "a lone surrogate"
        raise InvalidRequestError(
            f"invalid options for {key.name}: {what}; its options are: {known}",
            provider=key.name,
        ) from None


# token_provider -> (token, expires_at); a token without expiry is not kept.
# Keyed by the callable itself: a bound method made afresh on each call
# (cred.get) is equal to the last one, where its id() is not.
_tokens: dict[Any, tuple[str, float]] = {}
_TOKEN_MARGIN = 60.0


def _token(key: ProviderKey, provider: Any) -> str:
    """Return the token from ``provider``, fetching a new one when the kept one expires.

    No lock is held while the callable runs: two threads that find the token
    expired at the same moment may both fetch one, which beats serialising
    every fetch of every provider behind one lock.

    Raises:
        AuthenticationError: the callable failed or returned something else
            than a string or ``(string, expires_at)``.
    """
    try:
        kept = _tokens.get(provider)
    except TypeError:  # an unhashable callable: nothing is kept for it
        kept = None
    if kept is not None and time.time() < kept[1] - _TOKEN_MARGIN:
        return kept[0]
    failure: str | None = None
    try:
        value = provider()
    except Exception as exc:
        failure = type(exc).__name__
    if failure is not None:
        # Raised outside the except block: the callable's exception (whose
        # message may hold a client secret) is neither cause nor context.
        raise AuthenticationError(
            f"the token_provider for {key.name} raised {failure}; fix it, or pass api_key=",
            provider=key.name,
        )
    expires = None
    if isinstance(value, tuple) and len(value) == 2:
        value, expires = value
    if type(value) is not str or not (
        expires is None or (isinstance(expires, int | float) and math.isfinite(expires))
    ):
        raise AuthenticationError(
            f"the token_provider for {key.name} must return a string, or (string, "
            "expires_at in epoch seconds); an async callable is not supported",
            provider=key.name,
        )
    if expires is not None:
        if len(_tokens) >= 256:
            _tokens.clear()
        with contextlib.suppress(TypeError):
            _tokens[provider] = (value, float(expires))
    return value


def secret_header_names(key: ProviderKey) -> frozenset[str]:
    """Return the lowercase names of the request headers whose values are secrets for ``key``."""
    names = _SECRET_NAMES.get(type(key))
    if names is None:
        extra = {name.lower() for name in key.secret_headers}
        if key.auth_header:
            extra.add(key.auth_header.lower())
        names = _SECRET_NAMES[type(key)] = SECRET_HEADERS | extra
    return names


_SECRET_NAMES: dict[type[ProviderKey], frozenset[str]] = {}


def auth_headers(key: ProviderKey, config: Config) -> dict[str, str]:
    """Return the headers a call to ``key`` starts with: its auth header, then ``config.headers``.

    The key goes into ``key.auth_header`` after ``key.auth_prefix``; a
    provider with no auth header (or a call with no key) gets none.
    """
    headers: dict[str, str] = {}
    if config.api_key and key.auth_header:
        headers[key.auth_header] = key.auth_prefix + config.api_key
    if config.headers:
        headers.update(config.headers)
    return headers
