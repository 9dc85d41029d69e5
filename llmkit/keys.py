"""Provider keys: the types that generic functions dispatch on.

A provider is a subclass of :class:`ProviderKey` with a class-level ``name``;
defining the class registers the name. Built-in and third-party providers
are found the same way, through the ``llmkit.providers`` entry-point group,
which is read once, on the first name that is not registered yet.
Subclassing a key inherits every method registered for it, as Clojure's
``derive`` does for multimethods.
"""

from __future__ import annotations

import difflib
import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any, ClassVar

from llmkit.errors import InvalidRequestError, ProviderNotFoundError

__all__ = ["ENTRY_POINT_GROUP", "ProviderKey", "known_providers", "load_entry_points", "resolve"]

ENTRY_POINT_GROUP = "llmkit.providers"

_table: dict[str, ProviderKey] = {}
_load_errors: dict[str, str] = {}
_loaded = False
_loading = False
# Re-entrant: a plug-in may look providers up while it is being imported.
_lock = threading.RLock()
# Keys defined while an entry point is being imported, by the importing
# thread: published only once the import returns, when the module has
# registered its methods. A key published at class definition could be
# resolved by another thread before it has any method.
_pending: dict[str, ProviderKey] = {}
_loader: int | None = None


class ProviderKey:
    """Base class of provider keys.

    Attributes:
        name: the lowercase string users pass (``"openai"``); also the entry-point name.
        default_base_url: where requests go unless ``api_base`` is given.
        api_key_env: the environment variable holding the key, or ``None``
            for providers that need no key (a local server).
        api_key_env_fallbacks: more variables read, in order, when
            ``api_key_env`` is unset (Gemini's ``GOOGLE_API_KEY``).
        base_url_env: a variable whose value, when set, replaces
            ``default_base_url`` (``OLLAMA_HOST``, ``AZURE_OPENAI_ENDPOINT``);
            ``base_url_env_path`` is appended to it (``"/v1"``). A key
            with no default needs it: its absence is an error naming it.
        auth_header: the header carrying the key (``Authorization``,
            ``x-api-key``, ``api-key``, ``x-goog-api-key``...), or ``None``.
        auth_prefix: put before the key in ``auth_header`` (``"Bearer "``, or ``""``).
        request_id_headers: response headers holding the request id.
        secret_headers: more request headers whose values are secrets.
        options_type: the struct ``Config(options=...)`` is converted to.
        connect_hint: added to a connection failure's message: how to start
            the server when it is a local one (``ollama serve``).

    What varies between providers is declared here, as data, and read by
    the transport, the error scrubber and :func:`llmkit.config.auth_headers`.
    """

    __slots__ = ()
    name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    api_key_env: ClassVar[str | None] = None
    api_key_env_fallbacks: ClassVar[tuple[str, ...]] = ()
    base_url_env: ClassVar[str | None] = None
    base_url_env_path: ClassVar[str] = ""
    #: The header that carries the key (``None``: the provider takes none),
    #: and what goes before the key in it.
    auth_header: ClassVar[str | None] = "Authorization"
    auth_prefix: ClassVar[str] = "Bearer "
    #: Response headers that may hold the provider's request id, in order.
    request_id_headers: ClassVar[tuple[str, ...]] = ("x-request-id", "request-id")
    #: Request headers, besides ``auth_header`` and the usual credential
    #: headers, whose values are secrets: scrubbed from every error.
    secret_headers: ClassVar[frozenset[str]] = frozenset()
    #: The msgspec Struct (with ``forbid_unknown_fields=True``) that
    #: ``Config(options=...)`` must fit, or ``None``: the provider takes none.
    options_type: ClassVar[type[Any] | None] = None
    #: Appended to the message of an ``APIConnectionError`` (nothing answered
    #: at ``api_base``) from this key's calls; empty: nothing is added.
    connect_hint: ClassVar[str] = ""

    @classmethod
    def base_url_from_env(cls, value: str) -> str:
        """The base URL named by the (stripped, non-empty) value of ``base_url_env``.

        ``base_url_env_path`` is appended to what this returns, which is then
        checked like ``api_base``. By default a value without a scheme gets
        ``http://``; a key whose variable has forms of its own
        (``OLLAMA_HOST=0.0.0.0``) overrides this.
        """
        return value if "://" in value else "http://" + value

    @classmethod
    def key_variables(cls) -> tuple[str, ...]:
        """The environment variables that may hold the key, in the order they are read."""
        if cls.api_key_env is None:
            return ()
        return (cls.api_key_env, *cls.api_key_env_fallbacks)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # Only a class that names itself registers; a subclass made to tweak
        # a provider for one call site keeps its parent's name unregistered.
        if "name" in cls.__dict__ and cls.name:
            if cls.name != cls.name.lower():
                raise ValueError(f"provider name {cls.name!r} must be lowercase")
            if _loading_here():
                _pending[cls.name] = cls()
            else:
                # Defined in a script or a test: usable at once.
                _table[cls.name] = cls()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))


def load_entry_points() -> None:
    """Import every provider declared in the ``llmkit.providers`` entry-point group.

    Runs once per process; later calls return at once. A provider that fails
    to import is remembered and named when its name is asked for.
    """
    global _loaded, _loading
    if _loaded:
        return
    with _lock:
        if _loaded or _loading:
            return
        _loading = True
        try:
            _load_all()
        finally:
            _loading = False
        _loaded = True


def _load_all() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _table:
            continue
        try:
            key_type = _import_entry_point(ep)
        except Exception as exc:  # a broken plug-in must not break the others
            _load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if isinstance(key_type, type) and issubclass(key_type, ProviderKey):
            _table.setdefault(ep.name, key_type())
        else:
            _load_errors[ep.name] = f"entry point {ep.value!r} is not a ProviderKey subclass"


def _loading_here() -> bool:
    return _loader is not None and _loader == threading.get_ident()


def _import_entry_point(ep: EntryPoint) -> object:
    """Load ``ep``; publish the keys its module defines once the import has returned."""
    global _loader
    _loader = threading.get_ident()
    try:
        loaded = ep.load()
    except BaseException:
        _pending.clear()
        raise
    finally:
        _loader = None
    # The module ran to its end: its keys have their methods now.
    for name, key in _pending.items():
        _table.setdefault(name, key)
    _pending.clear()
    return loaded


def resolve(provider: str | ProviderKey) -> ProviderKey:
    """Return the key for a provider name (or the key itself).

    Raises:
        ProviderNotFoundError: no provider has this name; the message lists
            the known names and the closest match.
        InvalidRequestError: ``provider`` is neither a string nor a key.
    """
    if type(provider) is not str:
        if isinstance(provider, ProviderKey):
            return provider
        raise InvalidRequestError(
            f"provider must be a name (str) or a ProviderKey, not {type(provider).__name__}; "
            "pass e.g. 'openai'"
        )
    key = _table.get(provider)
    if key is not None:
        return key
    load_entry_points()
    key = _table.get(provider)
    if key is not None:
        return key
    if _loading_here():
        # A plug-in resolving a key of its own while it is being imported.
        key = _pending.get(provider)
        if key is not None:
            return key
    if provider in _load_errors:
        raise ProviderNotFoundError(
            f"Provider {provider!r} is installed but failed to load ({_load_errors[provider]}); "
            "reinstall or fix the package that provides it."
        )
    known = sorted(_table)
    message = f"Unknown provider {provider!r}. Known: {', '.join(known) or 'none'}."
    close = difflib.get_close_matches(provider.lower(), known, n=1)
    if close:
        message += f" Did you mean {close[0]!r}?"
    else:
        message += " Install the package that provides it, or define a ProviderKey subclass."
    raise ProviderNotFoundError(message, provider=provider)


def _snapshot() -> tuple[dict[str, ProviderKey], dict[str, str], bool]:
    return dict(_table), dict(_load_errors), _loaded


def _restore(saved: tuple[dict[str, ProviderKey], dict[str, str], bool]) -> None:
    global _loaded
    table, errors, loaded = saved
    with _lock:
        _table.clear()
        _table.update(table)
        _load_errors.clear()
        _load_errors.update(errors)
        _loaded = loaded


def known_providers() -> list[str]:
    """Return the sorted names of every registered and installed provider."""
    load_entry_points()
    return sorted(_table)
