"""The dashboard's pages, written once: app.py builds the navigation from this table and every link
(``st.page_link``, ``st.switch_page``, share captions) takes its path from here.

Page URLs are the file names (/new_run, /monitor, ...): on a fresh server Streamlit resolves the first
request against the pages/ folder before st.navigation has run, so a custom url_path would show
"Page not found" to the first visitor of a shared link (see :func:`pages.ui.session.use_router`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PageSpec:
    path: str
    title: str
    icon: str
    section: str
    default: bool = False

    @property
    def url_path(self) -> str:
        return Path(self.path).stem


HOME = PageSpec("pages/screens/home.py", "Home", ":material/home:", "", default=True)
NEW_RUN = PageSpec("pages/screens/new_run.py", "New run", ":material/tune:", "Train")
MONITOR = PageSpec("pages/screens/monitor.py", "Run monitor", ":material/monitoring:", "Train")
COMPARE = PageSpec("pages/screens/compare.py", "Compare", ":material/compare_arrows:", "Understand")
SAMPLES = PageSpec("pages/screens/samples.py", "Samples", ":material/text_snippet:", "Understand")
REPORT = PageSpec("pages/screens/report.py", "Run report", ":material/description:", "Understand")
ROOM = PageSpec("pages/screens/room.py", "Workshop room", ":material/groups:", "Train")
MECHANISMS = PageSpec("pages/screens/mechanisms.py", "Mechanisms", ":material/science:", "Understand")

#: In menu order.
PAGES = (HOME, NEW_RUN, MONITOR, ROOM, COMPARE, SAMPLES, REPORT, MECHANISMS)
#: The last path segment of every page's address (to find the app's root in a page URL).
URL_PATHS = frozenset(p.url_path for p in PAGES)
