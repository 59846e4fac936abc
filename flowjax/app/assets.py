"""The editor's page and icon, from ``static/``: the page carries its style and script
inline (nothing fetched from elsewhere); the icon, a 32x32 PNG of a face on the header's
colour (drawn with Pillow), is served at ``/favicon.ico``, where browsers ask for it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")


def static(name: str) -> Any:
    """``flowjax/app/static/<name>`` as an importlib resource."""
    return resources.files("flowjax.app").joinpath("static", name)


def page() -> str:
    """The editor's page (static/explore.css and explore.js inline)."""
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<title>flowjax live editor</title>"
            "<link rel=\"icon\" type=\"image/png\" href=\"favicon.ico\">"
            f"<style>{static('explore.css').read_text(encoding='utf-8')}</style>"
            "</head><body><div id=\"app\"></div>"
            f"<script>{static('explore.js').read_text(encoding='utf-8')}</script>"
            "</body></html>")


def favicon() -> bytes:
    """The PNG served at ``/favicon.ico`` (browsers take a PNG at that address)."""
    return static("favicon.png").read_bytes()
