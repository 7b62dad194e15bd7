"""Check the pkgdown site in headless Chromium: pages load cleanly, links resolve.

Usage: python tools/check_site.py [docs]

The site is served over HTTP on 127.0.0.1 (as a user's browser would see it, not
through file:// where scripts behave differently). The home page, the reference
index and every article are opened in headless Chromium; a page fails when the
browser logs any console message (pkgdown's pages log nothing when they work, and
Chromium reports console.error and uncaught exceptions at the same log level as
console.log, so every message counts), when it requests a file the server does not
have, or when it asks for anything outside the site (the machine is offline). Then
every internal link and asset reference of every HTML page must resolve to a file,
and every ``#fragment`` to an element id in it. Exits 1 listing every problem.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlparse

# Headless, logging console messages and requests to stderr, and without the
# browser's own background traffic (updates, sync, autofill) that is not the page's.
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=1",
    "--virtual-time-budget=5000", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-client-side-phishing-detection", "--disable-domain-reliability", "--no-pings",
    "--disable-features=AutofillServerCommunication,OptimizationHints,Translate,MediaRouter,"
    "SpellCheck",
)
# Browsers ask for /favicon.ico by themselves; pkgdown builds no favicon offline.
BROWSER_OWN_REQUESTS = ("/favicon.ico",)
# Third-party files copied into the site whose own documentation links are not ours.
VENDORED = ("mathjax", "vendor")
CONSOLE = re.compile(r":CONSOLE[^\]]*\] (.*)$")
# Resources of the rendered page (after its scripts ran) that come from elsewhere. The
# browser's own background requests are not the page's, so requests are judged from
# the page's DOM, not from the network log.
EXTERNAL = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"(https?://[^\"]+)\"", re.I
)


def _external_resources(dom: str) -> list[str]:
    return [url for url in EXTERNAL.findall(dom) if not url.startswith("http://127.0.0.1")]


class _Links(HTMLParser):
    """Collects the link targets and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if value is None:
                continue
            if key in ("id", "name"):
                self.ids.add(value)
            if (key == "href" and tag in ("a", "link")) or (
                key == "src" and tag in ("img", "script")
            ):
                self.targets.append(value)


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def _resolve(root: Path, page: Path, target: str) -> tuple[Path, str] | None:
    """The file and fragment an internal link points to; None for external links."""
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or target.startswith(("mailto:", "javascript:", "data:")):
        return None
    url, fragment = urldefrag(target)
    if not url:
        return page, fragment
    path = (page.parent / unquote(url.split("?")[0])).resolve()
    if path.is_dir():
        path = path / "index.html"
    if root not in path.parents and path != root:
        return path, fragment  # outside the site: reported as missing below
    return path, fragment


def check_links(root: Path) -> list[str]:
    problems = []
    pages = {
        p.resolve(): _parse(p)
        for p in root.rglob("*.html")
        if p.relative_to(root).parts[0] not in VENDORED
    }
    for page, links in pages.items():
        for target in links.targets:
            resolved = _resolve(root, page, target)
            if resolved is None:
                continue
            path, fragment = resolved
            where = page.relative_to(root)
            if not path.is_file() or root not in path.parents:
                problems.append(f"{where}: link {target!r} points to no file of the site")
            elif fragment and path.suffix == ".html":
                ids = pages[path].ids if path in pages else _parse(path).ids
                if fragment not in ids:
                    problems.append(f"{where}: link {target!r} names no element id {fragment!r}")
    return problems


class _Server(http.server.ThreadingHTTPServer):
    missing: list[str]


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's name)
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if self.path not in BROWSER_OWN_REQUESTS:
            self.server.missing.append(f"{code} {self.path}")  # type: ignore[attr-defined]
        super().send_error(code, message, explain)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("check_site: no chromium found (Debian package `chromium`)")


def check_pages(root: Path, pages: list[str]) -> list[str]:
    server = _Server(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.missing = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    problems = []
    profile = tempfile.mkdtemp(prefix="check-site-")
    try:
        for page in pages:
            server.missing.clear()
            url = urljoin(base, page)
            run = subprocess.run(
                [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if run.returncode != 0 or "</html>" not in run.stdout:
                problems.append(f"{page}: Chromium could not render it (exit {run.returncode})")
            for line in run.stderr.splitlines():
                console = CONSOLE.search(line)
                if console:
                    problems.append(f"{page}: console: {console.group(1)}")
            problems += [f"{page}: the server answered {m}" for m in server.missing]
            problems += [
                f"{page}: loads {u} from outside the site" for u in _external_resources(run.stdout)
            ]
    finally:
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "docs").resolve()
    articles = sorted(p.relative_to(root).as_posix() for p in (root / "articles").glob("*.html"))
    pages = ["index.html", "reference/index.html"] + [
        a for a in articles if a != "articles/index.html"
    ]
    if not (root / "index.html").is_file() or len(pages) < 3:
        print(f"check_site: {root} holds no built site with articles")
        return 1
    problems = check_pages(root, pages) + check_links(root)
    for problem in problems:
        print(problem)
    print(f"check_site: {len(pages)} pages opened, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
