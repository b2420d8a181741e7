"""Keep what clients send out of the aiohttp servers' error log.

When a request cannot be parsed (a header line over 8 KB, a malformed request line), aiohttp
logs the parser's exception with a traceback, and its message quotes the offending bytes: a
client could put the prefix of a key, or anything else, into the operator's logs. This filter
replaces such records by one line naming the error class and the peer, without the content.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError


class ParserErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "a client"
            record.msg, record.args = "unparseable HTTP request from %s (%s)", (peer, type(exc).__name__)
            record.exc_info, record.exc_text, record.levelno, record.levelname = (
                None,
                None,
                logging.INFO,
                "INFO",
            )
        return True


def install() -> None:
    """Idempotent: attach the filter to aiohttp's server logger once."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ParserErrorFilter) for f in logger.filters):
        logger.addFilter(ParserErrorFilter())
