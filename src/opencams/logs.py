"""The server's log lines: JSON (one object a line) or text, from the standard library's logging.

A leaf: it imports nothing of opencams. `configure` sets up the `opencams` loggers and returns
the configuration uvicorn applies to its own (every worker process applies it again), so that
uvicorn's lines have the same format. `REQUEST_ID` carries the RequestId of the CAMS request
being served into the lines of the work it causes (the Graph calls made for it); the line of a
webhook that completes an operation names the operation's RequestId itself.

A line's fields are its `extra` mapping: `log.info("request", extra={"Code": "OK", ...})`. No
caller passes a secret, a token, a signature or a header value: the fields are chosen, never a
dump of a request.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]
FORMAT_ENV = "OPENCAMS_LOG_FORMAT"

#: The RequestId of the CAMS request this task serves (None outside a request).
REQUEST_ID: ContextVar[str | None] = ContextVar("opencams_request_id", default=None)

_STANDARD = frozenset(RESERVED_ATTRS) | {"message", "asctime", "color_message"}
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds `RequestId` from REQUEST_ID to a line that does not name one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "RequestId" not in record.__dict__:
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.RequestId = request_id
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: time, level, logger, message, then the line's fields."""

    def __init__(self) -> None:
        super().__init__(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
        # uvicorn's coloured copy of its message is no field of ours.
        self._skip_fields.add("color_message")


class TextLines(logging.Formatter):
    """The message, then the line's fields as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        ]
        return f"{line} {' '.join(fields)}" if fields else line


def resolve_format(value: str | None) -> LogFormat:
    """The setting's value, or (unset) text on a terminal and JSON otherwise."""
    if value in ("json", "text"):
        return value  # type: ignore[return-value]
    return "text" if sys.stderr.isatty() else "json"


def config_dict(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A logging.config.dictConfig document: opencams' and uvicorn's loggers, one handler."""
    formatter = f"{__name__}.{'JsonLines' if fmt == 'json' else 'TextLines'}"
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"opencams": {"()": formatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "opencams",
                "filters": ["request_id"],
            }
        },
        "loggers": {
            "opencams": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }


def configure(level: str = "INFO", fmt: str | None = None) -> dict[str, Any]:
    """Apply the log configuration in this process; returns it (for uvicorn's workers)."""
    chosen = resolve_format(fmt if fmt is not None else os.environ.get(FORMAT_ENV))
    document = config_dict(chosen, level)
    logging.config.dictConfig(document)
    return document
