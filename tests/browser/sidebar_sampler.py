"""A record of what the sidebar's page list showed, taken in the browser from its first byte.

Installed as an init script (it runs before any of the page's own scripts): every 100 ms, and on
every DOM change in between, it notes the page list's labels (None while there is no list) and any
open dialog's text. The Python side reads the record back and judges it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pages.ui import routes

SAMPLE_EVERY_MS = 100

INIT_JS = """(() => {
  const samples = [];
  window.__sidebarSamples = samples;
  const snap = (kind) => {
    const nav = document.querySelector('[data-testid="stSidebarNav"]');
    const links = nav ? Array.from(nav.querySelectorAll('a')).map(a => {
      const icon = a.querySelector('[data-testid="stIconMaterial"]');
      return a.textContent.slice(icon ? icon.textContent.length : 0).trim();
    }) : null;
    const dialogs = Array.from(document.querySelectorAll('[role="dialog"]')).map(d => d.textContent.trim());
    samples.push({kind, t: Math.round(performance.now()), links, dialogs});
  };
  setInterval(() => snap('tick'), SAMPLE_EVERY_MS);
  new MutationObserver(() => snap('change')).observe(document, {subtree: true, childList: true, characterData: true});
})();""".replace("SAMPLE_EVERY_MS", str(SAMPLE_EVERY_MS))


def menu_titles() -> list[str]:
    """The router's page list as the sidebar shows it: sections in first-seen order, pages in table order."""
    sections: dict[str, list[str]] = {}
    for spec in routes.PAGES:
        sections.setdefault(spec.section, []).append(spec.title)
    return [title for titles in sections.values() for title in titles]


@dataclass(frozen=True)
class Samples:
    """What the sampler saw: ``ticks`` timed samples, plus the snapshots taken on DOM changes."""

    rows: list[dict]

    @property
    def ticks(self) -> int:
        return sum(1 for r in self.rows if r["kind"] == "tick")

    def lists_other_than(self, expected: list[str]) -> list[dict]:
        """Samples showing a page list that is not ``expected`` (a legacy list, a partial one)."""
        return [r for r in self.rows if r["links"] is not None and r["links"] != expected]

    def with_dialog(self, text: str) -> list[dict]:
        return [r for r in self.rows if any(text in d for d in r["dialogs"])]

    def with_list(self) -> int:
        return sum(1 for r in self.rows if r["kind"] == "tick" and r["links"] is not None)


def read(page) -> Samples:
    return Samples(page.evaluate("window.__sidebarSamples || []"))
