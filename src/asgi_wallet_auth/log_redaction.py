"""Credentials cut out of server log lines: tokens and request signatures in query strings.

Browsers cannot set headers on a websocket, so a token travels as ``?access_token=``, and Web3MQ
clients may send their request signature in the query; servers log the whole request target
(uvicorn's access log does by default). ``install_log_redaction()`` puts a filter on uvicorn's
loggers that replaces those values with ``[redacted]`` before any handler formats the line.
``asgi-wallet-auth serve`` installs it in every worker; an application run under its own uvicorn
can call it once at startup.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

#: Query parameters whose values are credentials: the websocket token, and the signatures of
#: Web3MQ's signed requests and logins, under every name a client may send them.
SENSITIVE_PARAMETERS = frozenset(
    {
        "access_token",
        "web3mq_user_signature",
        "web3mq_signature",
        "did_signature",
        "signature",
    }
)
#: What a credential's value is replaced with.
REDACTED = "[redacted]"
#: uvicorn's loggers: request lines (``uvicorn.access``), websocket handshakes and the
#: websockets library's own debug lines (``uvicorn.error``), ASGI messages at trace level.
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")

# A parameter name where a query parameter can start: after "?", "&" or ";" (some servers split
# on it), at a quote or a space (a query string quoted in a message), or at the very start.
# Only the name is matched, so that a value holding "?name=" is scanned as well.
_NAME = re.compile(r"(?:(?<=[?&;'\"\s])|^)([^=&;?'\"\s]{1,64})=")
# A value runs to the next "&" (the only separator Python's parse_qsl knows), or to a quote or
# whitespace, which no token or signature contains and which end a path quoted in a message.
_VALUE_END = re.compile(r"[&'\"\s]")


def _sensitive(name: str) -> bool:
    # Servers decode names before looking them up: access%5Ftoken is access_token to them.
    return unquote_plus(name).strip().lower() in SENSITIVE_PARAMETERS


def redact_credentials(text: str) -> str:
    """``text`` with the value of every sensitive query parameter replaced by ``[redacted]``."""
    if "=" not in text:
        return text
    pieces: list[str] = []
    position = 0
    for match in _NAME.finditer(text):
        if match.start() < position or not _sensitive(match.group(1)):
            continue  # inside a value already cut out, or a harmless parameter
        end = _VALUE_END.search(text, match.end())
        stop = len(text) if end is None else end.start()
        pieces += [text[position : match.end()], REDACTED]
        position = stop
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def _redact_argument(value: object) -> object:
    if isinstance(value, str):
        return redact_credentials(value)
    if value is None or isinstance(value, (int, float)):
        return value  # numbers keep their type: a %d in the format needs them
    try:
        text = str(value)  # bytes, a scope dict, a client tuple: whatever they print as
    except Exception:  # a filter must never raise: logging would pass it to the caller
        return value
    cleaned = redact_credentials(text)
    return value if cleaned == text else cleaned


class CredentialRedactor(logging.Filter):
    """A ``logging.Filter`` that redacts credentials from a record's arguments and message.

    The arguments are redacted one by one, so that formatters that unpack them (uvicorn's
    access formatter expects five) keep working. If the formatted message still holds a
    credential (one split between the format string and an argument), the record is replaced
    by its redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_argument(value) for value in args)
        elif isinstance(args, Mapping):
            record.args = {key: _redact_argument(value) for key, value in args.items()}
        try:
            message = record.getMessage()
        except Exception:  # a broken format: the handler reports it, and nothing is printed
            return True
        cleaned = redact_credentials(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install_log_redaction(loggers: Iterable[str] = UVICORN_LOGGERS) -> None:
    """Add one ``CredentialRedactor`` to each named logger (again: no second one is added).

    A logger's filters see the records logged to it, before its handlers and its parents'
    handlers, whichever formatter those use.
    """
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, CredentialRedactor) for f in logger.filters):
            logger.addFilter(CredentialRedactor())


__all__ = [
    "REDACTED",
    "SENSITIVE_PARAMETERS",
    "UVICORN_LOGGERS",
    "CredentialRedactor",
    "install_log_redaction",
    "redact_credentials",
]
