"""HTML5 creatives: reading zip bundles safely, finding http: resources, the sandbox and CSP.

A bundle is unpacked into storage under a directory named by the zip's content hash; its
entry file gets a Content-Security-Policy and a small error reporter injected at the top of
`<head>`. Third-party tags are not stored: they are rendered into the `srcdoc` of the same
sandboxed iframe.
"""

import posixpath
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from creatives.units import weight

# What the creative's frame may do: run scripts and open the landing page in a new window;
# not read our origin's cookies or storage, navigate the publisher's page, submit forms,
# or open dialogs.
SANDBOX = "allow-scripts allow-popups allow-popups-to-escape-sandbox"

HTML_SUFFIXES = (".html", ".htm")
# Files whose text may name other resources.
TEXT_SUFFIXES = (*HTML_SUFFIXES, ".css", ".js", ".mjs", ".json", ".svg", ".xml")
# Zip clutter from desktop archivers, skipped rather than refused.
JUNK = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$)")

# An http: URL; XML namespace names look like URLs but load nothing.
_HTTP_URL = re.compile(rb"http://[^\s\"'<>()\\`]+", re.IGNORECASE)
_NAMESPACE_HOSTS = (b"www.w3.org/", b"ns.adobe.com/", b"purl.org/", b"schemas.")


@dataclass(frozen=True)
class Bundle:
    entry: str
    files: dict[str, bytes]  # path inside the bundle -> content


class BundleError(ValueError):
    """What is wrong with a bundle, in words for the uploader."""


def insecure_urls(data: bytes) -> list[str]:
    """The distinct http: URLs a text loads or links to, in order of appearance."""
    found: list[str] = []
    for match in _HTTP_URL.finditer(data):
        url = match.group()
        if url[7:].lower().startswith(_NAMESPACE_HOSTS):
            continue
        text = url.decode("utf-8", "replace")
        if text not in found:
            found.append(text)
    return found


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _safe_path(name: str) -> str | None:
    """The member's path inside the bundle, or None when it would escape it."""
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    path = posixpath.normpath(name)
    if path.startswith("../") or path == ".." or path == ".":
        return None
    return path


def read_bundle(file: IO[bytes], label: str, entry_file: str, secure: bool) -> Bundle:
    """The bundle's files, after every check an upload must pass (raises BundleError)."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BundleError(f"{label} is not a zip archive (or it is damaged).") from exc
    with archive:
        members = [i for i in archive.infolist() if not i.is_dir() and not JUNK.search(i.filename)]
        max_files = settings.CREATIVE_HTML5_MAX_FILES
        if len(members) > max_files:
            raise BundleError(f"{label} holds {len(members)} files; the limit is {max_files}.")
        max_unpacked = settings.CREATIVE_HTML5_MAX_UNPACKED_BYTES
        files: dict[str, bytes] = {}
        total = 0
        for info in members:
            path = _safe_path(info.filename)
            if path is None:
                raise BundleError(
                    f"{label}: {info.filename} points outside the bundle; "
                    "use relative paths inside the zip."
                )
            if _is_symlink(info):
                raise BundleError(f"{label}: {info.filename} is a symbolic link; zip the file.")
            if info.flag_bits & 0x1:
                raise BundleError(
                    f"{label}: {info.filename} is encrypted; zip it without a password."
                )
            # Read at most the remaining allowance: a zip may lie about its sizes.
            try:
                with archive.open(info) as member:
                    data = member.read(max_unpacked - total + 1)
            except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError) as exc:
                raise BundleError(f"{label}: {info.filename} cannot be unpacked ({exc}).") from exc
            total += len(data)
            if total > max_unpacked:
                raise BundleError(
                    f"{label} unpacks to more than {weight(max_unpacked)}, the limit for "
                    "HTML5 bundles."
                )
            files[path] = data
    entry = posixpath.normpath(entry_file or "index.html")
    if entry not in files:
        pages = sorted(p for p in files if p.lower().endswith(HTML_SUFFIXES))
        found = ", ".join(pages) if pages else "none"
        raise BundleError(
            f"{label} has no entry file {entry}; set the entry file to the page that "
            f"starts the ad (HTML files in the zip: {found})."
        )
    if not entry.lower().endswith(HTML_SUFFIXES):
        raise BundleError(f"The entry file {entry} is not an HTML page (.html or .htm).")
    if secure:
        for path, data in files.items():
            if path.lower().endswith(TEXT_SUFFIXES):
                urls = insecure_urls(data)
                if urls:
                    raise BundleError(
                        f"{label}: {path} loads {urls[0]} over http; a secure creative loads "
                        "every resource over https."
                    )
    return Bundle(entry=entry, files=files)


def content_security_policy(secure: bool) -> str:
    """The CSP an HTML5 creative runs under: no plugins, forms, base tags or http (when secure)."""
    remote = "https:" if secure else "https: http:"
    return "; ".join(
        [
            f"default-src 'self' {remote} data: blob:",
            f"script-src 'self' 'unsafe-inline' 'unsafe-eval' {remote}",
            f"style-src 'self' 'unsafe-inline' {remote}",
            f"img-src 'self' {remote} data: blob:",
            f"media-src 'self' {remote} data: blob:",
            f"connect-src 'self' {remote}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


# What the creative's document tells the page framing it once it has loaded, and again
# whenever that page asks (PING_MESSAGE). A frame's load event fires for an error page too (a
# refused X-Frame-Options, a 404, a network error), so only the document itself proves the
# creative is there; asking again covers a page that started listening after the load.
LOADED_MESSAGE = "ads-frame-loaded"
PING_MESSAGE = "ads-frame-ping"


def error_reporter(error_url_js: str) -> str:
    """A script that says the creative loaded and reports its first failure to the error URL.

    A resource that fails to load counts as 401 (not found), an uncaught script error as 900
    (undefined error): the VAST error codes, so reporting reads one table for every format.
    `error_url_js` is a JavaScript expression for the error URL.
    """
    return (
        "<script>(function(){function l(){try{parent.postMessage('" + LOADED_MESSAGE + "','*')}"
        "catch(e){}}addEventListener('load',l);addEventListener('message',function(e){"
        "if(e.source===parent&&e.data==='"
        + PING_MESSAGE
        + "')l()});var u="
        + error_url_js
        + ",s=0;if(!u)return;"
        "addEventListener('error',function(e){if(s++)return;"
        "new Image().src=u+'?code='+(e.target&&e.target!==window?401:900)},true)})();</script>"
    )


def prepare_entry(html: bytes, secure: bool) -> bytes:
    """The entry page with our CSP and error reporter first in its <head>.

    The frame's URL carries the error URL as `errorUrl` (and the click URL as `clickTag`,
    the name HTML5 authoring tools read it by).
    """
    inject = (
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy(secure)}">'
        + error_reporter("new URLSearchParams(location.search).get('errorUrl')")
    ).encode()
    # After the charset declaration when there is one (it must stay in the first 1,024
    # bytes), else right after <head>: before any script the page runs.
    anchor = re.search(rb"<meta\b[^>]*charset[^>]*>", html[:1024], re.IGNORECASE) or re.search(
        rb"<head\b[^>]*>", html, re.IGNORECASE
    )
    if anchor:
        return html[: anchor.end()] + inject + html[anchor.end() :]
    top = re.search(rb"<html\b[^>]*>", html, re.IGNORECASE)
    if top:
        return html[: top.end()] + b"<head>" + inject + b"</head>" + html[top.end() :]
    return b"<head>" + inject + b"</head>" + html
