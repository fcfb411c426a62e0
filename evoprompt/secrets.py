"""Credentials never stored or logged: a password in an OpenAI-compatible `base_url` (`https://user:pass@host/v1`)
must not reach run.json, report.md, hydra's `.hydra/` files, a log line or an error message. API keys are read from
the environment at call time (`api_key_env`) and are never part of a configuration."""
from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

# scheme://user[:password]@ anywhere in a text: the userinfo part goes
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def safe_url(url: str | None) -> str:
    """url without user:password@."""
    if not url:
        return str(url)
    parts = urlsplit(str(url))
    if parts.username or parts.password:
        parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
    return urlunsplit(parts)


def redact(value):
    """value (a string, or lists and dicts of them) with the credentials of every URL in it removed."""
    if isinstance(value, str):
        return _USERINFO.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    return value


def redact_files(folder: Path) -> None:
    """Rewrite the text files of a folder (hydra's `.hydra/`: config, overrides) without credentials."""
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace")
            if redact(text) != text:
                f.write_text(redact(text), encoding="utf-8")


class RedactFilter(logging.Filter):
    """A logging filter (conf/hydra/job_logging/quiet.yaml) that removes credentials from every record, whichever
    library logs a URL (httpx logs each request's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _USERINFO.search(message):
            record.msg, record.args = redact(message), ()
        return True
