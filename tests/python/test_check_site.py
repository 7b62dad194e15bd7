"""The documentation-site check (tools/check_site.py) finds what it promises to find."""

import importlib.util
import shutil
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "tools" / "check_site.py"
_spec = importlib.util.spec_from_file_location("check_site", _PATH)
check_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_site)


def _site(root: Path, index: str, article: str) -> Path:
    (root / "reference").mkdir(parents=True)
    (root / "articles").mkdir()
    (root / "index.html").write_text(index)
    (root / "reference" / "index.html").write_text('<html><body><h2 id="a">A</h2></body></html>')
    (root / "articles" / "one.html").write_text(article)
    return root


def test_links_and_fragments_are_resolved(tmp_path):
    root = _site(
        tmp_path,
        '<html><body><a href="reference/index.html#a">ok</a>'
        '<a href="reference/index.html#nope">bad</a></body></html>',
        '<html><body><a href="../missing.html">m</a><a href="https://x.org">ext</a></body></html>',
    )
    problems = check_site.check_links(root.resolve())
    assert len(problems) == 2
    assert any("'nope'" in p for p in problems)
    assert any("missing.html" in p for p in problems)


@pytest.mark.skipif(
    shutil.which("chromium") is None
    and not __import__("os").environ.get("EQUIVARIANCE_REQUIRE_PYTHON"),
    reason="chromium is installed by `make setup`",
)
def test_console_errors_missing_files_and_external_loads_are_reported(tmp_path):
    root = _site(
        tmp_path,
        '<html><head><script src="nosuch.js"></script></head>'
        "<body><script>undefinedFn()</script></body></html>",
        '<html><body><img src="https://example.org/x.png"></body></html>',
    )
    problems = check_site.check_pages(root.resolve(), ["index.html", "articles/one.html"])
    assert any("undefinedFn" in p for p in problems)
    assert any("404 /nosuch.js" in p for p in problems)
    assert any("example.org" in p for p in problems)
    clean = _site(tmp_path / "clean", "<html><body><p>fine</p></body></html>", "<html></html>")
    assert check_site.check_pages(clean.resolve(), ["index.html"]) == []
