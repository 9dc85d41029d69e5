"""``OLLAMA_HOST``, read as Ollama's own clients read it; shared by both Ollama keys.

``ollama`` and ``ollama_openai`` take the server from the same variable,
so they must agree on what a value means (``gpu-box`` is
``http://gpu-box:11434`` for both) and say the same thing when nothing
answers there.
"""

from __future__ import annotations

from typing import Final

from llmkit.provider import InvalidRequestError

__all__ = ["CONNECT_HINT", "DEFAULT_PORT", "ollama_base_url"]

#: The port a scheme-less ``OLLAMA_HOST`` (``gpu-box``) means, as ``ollama serve`` uses.
DEFAULT_PORT: Final = 11434
#: Added to the message of a call that found no server at its base URL.
CONNECT_HINT: Final = (
    "Is Ollama running there? Start it with `ollama serve`, or point OLLAMA_HOST "
    "(or api_base) at the server"
)
# The addresses a server listens on to be reached from anywhere: not ones to
# connect to (Windows refuses them), so they stand for this machine.
_ANY: Final = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def _refused(message: str, provider: str | None) -> InvalidRequestError:
    return InvalidRequestError(f"OLLAMA_HOST {message}", provider=provider)


def ollama_base_url(value: str, *, provider: str | None = None) -> str:
    """The base URL an ``OLLAMA_HOST`` value names, read as Ollama's own clients read it.

    A value without a scheme is ``http`` on port 11434 (``gpu-box`` is
    ``http://gpu-box:11434``, ``:8080`` is ``http://127.0.0.1:8080``); with a
    scheme and no port, the scheme's port. ``0.0.0.0`` and ``::`` stand for
    this machine (``127.0.0.1``, ``::1``). An IPv6 address gets its brackets
    and its zone id is percent-encoded (``fe80::1%eth0`` is
    ``http://[fe80::1%25eth0]:11434``). The port itself is checked later,
    with the rest of the URL, as an ``api_base`` is.

    Raises:
        InvalidRequestError: the value holds a user name or password, a
            query or a fragment, or an IPv6 bracket it does not close (the
            message never repeats the value's credentials or query).
    """
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        scheme = scheme.lower()
        port = "443" if scheme == "https" else "80"
    else:
        scheme, rest, port = "http", text, str(DEFAULT_PORT)
    if "?" in rest or "#" in rest:
        raise _refused(
            "holds a query (?...) or a fragment (#...); give only scheme, host, port and path "
            "(e.g. https://ollama.example.com/ollama)",
            provider,
        )
    authority, _, path = rest.partition("/")
    if "@" in authority:
        # httpx would send user:password as Basic auth, and log it.
        raise _refused(
            "holds a user name or password (user:password@); remove them and pass the key as "
            "api_key= or a header in headers=",
            provider,
        )
    if authority.startswith("["):
        host, closed, tail = authority[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            raise _refused(
                f"{text!r} has an IPv6 address without its closing bracket (or text after it); "
                "write it as [::1]:11434",
                provider,
            )
        port = tail[1:] or port
    elif authority.count(":") == 1:
        host, _, given = authority.partition(":")
        port = given or port
    else:
        host = authority  # a name, an IPv4 address, or a bare IPv6 one
    host = _ANY.get(host, host) or "127.0.0.1"
    if ":" in host:
        address, percent, zone = host.partition("%")
        if percent and not zone.startswith("25"):
            # RFC 6874: a zone id in a URL is introduced by an encoded "%".
            host = f"{address}%25{zone}"
        host = f"[{host}]"
    path = path.strip("/")
    return f"{scheme}://{host}:{port}" + (f"/{path}" if path else "")
