"""The book: built offline with warnings as errors, then read in a real browser.

The site is built (incrementally: notebook outputs come from the jupyter-cache and
unchanged pages are not re-read) with the README's command into ``docs/_build/html``.
Static checks read the HTML files: nothing is loaded from the network and every
internal link resolves. Headless Chromium (Debian's ``chromium``, driven through
Playwright's protocol client, never a downloaded browser) then opens every page from
disk and checks what a reader sees: images loaded, equations typeset by the bundled
MathJax, the claims table, the API signatures, no console error. Screenshots of the
closed-form notebook and the claims page are saved under ``tests/artifacts/`` (or
``$SIMAM_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SITE = DOCS / "_build" / "html"
ARTIFACTS = Path(os.environ.get("SIMAM_TEST_ARTIFACTS", ROOT / "tests" / "artifacts"))
BUILD_CMD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
             str(DOCS), str(SITE)]
CHROMIUM = os.environ.get("SIMAM_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
NOTEBOOK_PAGES = [f"notebooks/{p.stem}.html" for p in sorted((ROOT / "notebooks").glob("*.ipynb"))]
BOOK_PAGES = ["index.html", "what-simam-is.html", "claims.html", "performance.html",
              "numerics.html", "arrays.html", "api.html", *NOTEBOOK_PAGES]


# ----------------------------------------------------------------------------- build
@pytest.fixture(scope="module")
def site() -> Path:
    """Build the book (or bring an existing build up to date); fail on any warning."""
    proc = subprocess.run(BUILD_CMD, cwd=ROOT, capture_output=True, text=True, timeout=3000,
                          check=False)
    log = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"sphinx build failed (warnings are errors):\n{log}"
    assert "build succeeded" in proc.stdout, log
    return SITE


def _all_pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


class _Page(HTMLParser):
    """Collect resource references, links and element ids of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.resources: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag in ("script", "img", "iframe", "source", "video", "audio", "embed") and a.get(
                "src"):
            self.resources.append(a["src"])
        elif tag == "link" and a.get("href"):
            rel = a.get("rel", "").lower()
            if any(r in rel for r in ("stylesheet", "preload", "icon", "modulepreload")):
                self.resources.append(a["href"])
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _is_remote(url: str) -> bool:
    return bool(urlsplit(url).scheme) or url.startswith("//")


def test_claims_extension_reads_both_verdict_forms() -> None:
    """``verdict`` as a bool (holds/fails) or as a string with ``holds``/``engine`` beside."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import simam_claims as ext
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    cases = [
        ({"verdict": True}, "holds", "simam-holds"),
        ({"verdict": False}, "fails", "simam-fails"),
        ({"verdict": "proved", "holds": True, "engine": "z3"}, "proved", "simam-holds"),
        ({"verdict": "refuted", "holds": False, "engine": "z3"}, "refuted", "simam-fails"),
        ({"verdict": "undecided", "holds": None, "engine": "z3"}, "undecided",
         "simam-undecided"),
        ({"verdict": "refuted"}, "refuted", "simam-fails"),
    ]
    for claim, text, css in cases:
        assert (ext.verdict_text(claim), ext.verdict_class(claim)) == (text, css), claim
    ce = {"others": [0], "t": 1.0, "lam_zero": {"lam": 0.0, "claimed": -2.0}}
    assert ext.format_counterexample(ce) == "others=[0]; t=1; lam_zero={lam=0, claimed=-2}"


def test_book_has_every_page(site: Path) -> None:
    for name in BOOK_PAGES:
        assert (site / name).is_file(), f"{name} was not built"
    assert len(NOTEBOOK_PAGES) >= 5
    # MathJax is served by the site itself
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_nothing_is_loaded_from_the_network(site: Path) -> None:
    """No page or stylesheet pulls a script, style, font or image from outside the site."""
    problems = []
    for path in _all_pages(site):
        for url in _parse(path).resources:
            if _is_remote(url):
                problems.append(f"{path.relative_to(site)}: remote resource {url}")
                continue
            target = (path.parent / unquote(urlsplit(url).path)).resolve()
            if not target.is_file():
                problems.append(f"{path.relative_to(site)}: missing resource {url}")
    remote_css = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])\s*(?:https?:)?//", re.I)
    for css in site.rglob("*.css"):
        if remote_css.search(css.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{css.relative_to(site)}: loads from the network")
    assert not problems, "\n".join(problems)


def test_no_broken_internal_link(site: Path) -> None:
    """Every relative link names an existing file, and its #fragment an existing id."""
    pages = {p.resolve(): _parse(p) for p in _all_pages(site)}
    broken = []
    checked = 0
    for path, page in pages.items():
        for href in page.links:
            if not href or _is_remote(href):
                continue
            parts = urlsplit(href)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            checked += 1
            if not target.exists():
                broken.append(f"{path.relative_to(site.resolve())}: {href} (no such file)")
                continue
            frag = unquote(parts.fragment)
            if frag and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if frag not in ids:
                    broken.append(f"{path.relative_to(site.resolve())}: {href} (no id {frag!r})")
    assert checked > 100, f"only {checked} internal links found"
    assert not broken, "\n".join(broken)


# --------------------------------------------------------------------------- browser
@pytest.fixture(scope="module")
def browser(site: Path):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); "
                    ".ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_FLAGS, chromium_sandbox=False)
        try:
            yield chromium
        finally:
            chromium.close()


# Runs in the page after load: wait for MathJax and every image, then report.
_INSPECT_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(img => {
    img.loading = 'eager';
    if (img.complete) return null;
    return new Promise(r => { img.addEventListener('load', r); img.addEventListener('error', r);
                              setTimeout(r, 20000); });
  }));
  const article = document.querySelector('article') || document.body;
  const prose = article.cloneNode(true);
  prose.querySelectorAll('pre, code, script, style, mjx-container, .highlight, textarea')
       .forEach(e => e.remove());
  const math = Array.from(document.querySelectorAll('.math'));
  return {
    images: imgs.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth,
                            complete: i.complete})),
    mathNodes: math.length,
    mathUntypeset: math.filter(m => !m.querySelector('mjx-container'))
                       .map(m => m.textContent.slice(0, 80)),
    mjx: document.querySelectorAll('mjx-container').length,
    mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
                     .map(e => e.textContent.slice(0, 80)),
    text: prose.innerText,
  };
}
"""

# raw TeX that MathJax did not typeset: $...$, $$...$$, \\(...\\), \\[...\\]
_RAW_TEX = re.compile(r"\$\$?[^$\s][^$\n]*\$|\\\(|\\\[[^\]]")


@dataclasses.dataclass
class _Visit:
    report: dict
    errors: list[str]


def _visit(browser, page_path: Path, screenshot: Path | None = None) -> _Visit:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url} {r.failure}"))
    try:
        page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=60_000)
        report = page.evaluate(_INSPECT_JS)
        page.wait_for_timeout(200)  # late console messages
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    finally:
        context.close()
    return _Visit(report, errors)


@pytest.fixture(scope="module")
def visits(browser, site: Path) -> dict[str, _Visit]:
    """Every page of the site, opened once from disk (file://)."""
    shots = {"notebooks/02_closed_form.html": ARTIFACTS / "book_02_closed_form.png",
             "claims.html": ARTIFACTS / "book_claims.png"}
    return {str(p.relative_to(site)): _visit(browser, p, shots.get(str(p.relative_to(site))))
            for p in _all_pages(site)}


def test_pages_have_no_console_error(visits: dict[str, _Visit]) -> None:
    problems = [f"{name}: {e}" for name, v in visits.items() for e in v.errors]
    assert not problems, "\n".join(problems)


def test_every_image_loaded(visits: dict[str, _Visit]) -> None:
    problems = [f"{name}: {img['src']}" for name, v in visits.items()
                for img in v.report["images"] if img["w"] <= 0]
    assert not problems, "images that did not load:\n" + "\n".join(problems)
    # the notebook figures and the benchmark chart are really there
    for name in NOTEBOOK_PAGES:
        if name.startswith("notebooks/02"):
            continue  # the symbolic notebook has no figure
        assert visits[name].report["images"], f"{name} shows no figure"
    assert any("bench" in (i["src"] or "") for i in visits["performance.html"].report["images"])


def test_equations_are_typeset(visits: dict[str, _Visit]) -> None:
    problems = []
    for name, v in visits.items():
        r = v.report
        if r["mathUntypeset"]:
            problems.append(f"{name}: math not typeset: {r['mathUntypeset'][:3]}")
        if r["mathErrors"]:
            problems.append(f"{name}: MathJax errors: {r['mathErrors'][:3]}")
        raw = _RAW_TEX.findall(r["text"])
        if raw:
            problems.append(f"{name}: raw TeX left in the text: {raw[:3]}")
    assert not problems, "\n".join(problems)
    # the derivation pages are full of equations, both from Markdown and from SymPy output
    for name in ("notebooks/02_closed_form.html", "notebooks/03_minimum_energy_errata_loo.html",
                 "claims.html"):
        assert visits[name].report["mjx"] >= (20 if "notebooks" in name else 2), name


def test_claims_table_lists_every_claim_with_its_verdict(browser, site: Path) -> None:
    from derivations import all_claims

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto((site / "claims.html").as_uri(), wait_until="load")
        rows = page.eval_on_selector_all(
            "table.simam-claims tbody tr",
            "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))")
    finally:
        context.close()
    claims = [dataclasses.asdict(c) for c in all_claims()]
    assert len(rows) == len(claims)
    for i, (row, claim) in enumerate(zip(rows, claims, strict=True), 1):
        verdict = claim["verdict"]
        expected = ("holds" if verdict else "fails") if isinstance(verdict, bool) else str(verdict)
        assert row[:4] == [str(i), claim["source"], claim["name"], expected], row


def test_api_page_shows_the_signatures(browser, site: Path) -> None:
    import derivations
    import simam_ref

    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto((site / "api.html").as_uri(), wait_until="load")
        sigs = dict(page.eval_on_selector_all(
            "dt.sig[id]", "dts => dts.map(d => [d.id, d.innerText])"))
    finally:
        context.close()
    expected = {f"simam_ref.{n}": getattr(simam_ref, n) for n in simam_ref.__all__}
    expected |= {f"derivations.{n}": getattr(derivations, n) for n in derivations.__all__
                 if inspect.isfunction(getattr(derivations, n))}
    assert {"simam_ref.simam", "simam_ref.simam_backward",
            "simam_ref.available_backends"} <= set(expected)
    for ident, func in expected.items():
        assert ident in sigs, f"{ident} is not on the API page"
        text = sigs[ident].replace("\u200b", "")
        assert text.startswith(ident + "("), text
        for param in inspect.signature(func).parameters:
            assert re.search(rf"\b{param}\b", text), f"{ident}: {param!r} missing from {text!r}"
    # defaults are shown too
    assert "lam:float=0.0001" in sigs["simam_ref.simam"].replace(" ", "")


def test_screenshots_saved(visits: dict[str, _Visit]) -> None:
    for name in ("book_02_closed_form.png", "book_claims.png"):
        shot = ARTIFACTS / name
        assert shot.is_file() and shot.stat().st_size > 10_000, shot
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
