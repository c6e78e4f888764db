"""``docs/check_links.py``, the internal link check that ``nox -s docs`` and ``.ci/run`` run
on the built site, on a small site made here."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

CHECKER = Path(__file__).resolve().parent.parent / "docs" / "check_links.py"


def load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_links", CHECKER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_site(root: Path, pages: dict[str, str]) -> None:
    for name, body in pages.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<html><body>{body}</body></html>", encoding="utf-8")


def test_a_site_whose_links_resolve_passes(tmp_path: Path) -> None:
    write_site(tmp_path, {
        "index.html": '<a href="guide.html#reads">r</a> <a href="#top">t</a> <p id="top"></p>'
                      '<a href="https://example.invalid/x#y">external, not fetched</a>'
                      '<img src="_static/logo.png">',
        "guide.html": '<section id="reads"><a href="index.html">back</a></section>'
                      '<a href="sub/">a directory</a>',
        "sub/index.html": '<a name="old-style"></a><a href="../guide.html#reads">up</a>',
        "_static/logo.png": "",
    })
    checker = load_checker()
    assert checker.broken_links(tmp_path) == []
    assert checker.main([str(tmp_path)]) == 0


def test_a_missing_page_or_anchor_is_reported(tmp_path: Path) -> None:
    write_site(tmp_path, {
        "index.html": '<a href="gone.html">g</a> <a href="guide.html#nowhere">n</a>'
                      '<a href="#also-nowhere">a</a>',
        "guide.html": '<section id="reads"></section>',
    })
    checker = load_checker()
    assert checker.broken_links(tmp_path) == [
        "index.html: gone.html (no such file)",
        "index.html: guide.html#nowhere (no such anchor)",
        "index.html: #also-nowhere (no such anchor)",
    ]
    assert checker.main([str(tmp_path)]) == 1


def test_an_unbuilt_site_is_a_usage_error(tmp_path: Path) -> None:
    assert load_checker().main([str(tmp_path / "missing")]) == 2
