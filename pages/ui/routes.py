"""The dashboard's pages, written once: the router (``pages/router.py``) builds the navigation from this
table and every link (``st.page_link``, ``st.switch_page``, share captions) takes its path from here.

Paths are relative to the router, Streamlit's main script (``st.Page`` and the links resolve them
from its folder, ``pages/``): ``screens/home.py`` is ``pages/screens/home.py`` in the repository.
Page URLs are the file names (/new_run, /monitor, ...), the addresses people have already shared.
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


HOME = PageSpec("screens/home.py", "Home", ":material/home:", "", default=True)
NEW_RUN = PageSpec("screens/new_run.py", "New run", ":material/tune:", "Train")
MONITOR = PageSpec("screens/monitor.py", "Run monitor", ":material/monitoring:", "Train")
COMPARE = PageSpec("screens/compare.py", "Compare", ":material/compare_arrows:", "Understand")
SAMPLES = PageSpec("screens/samples.py", "Samples", ":material/text_snippet:", "Understand")
REPORT = PageSpec("screens/report.py", "Run report", ":material/description:", "Understand")
ROOM = PageSpec("screens/room.py", "Workshop room", ":material/groups:", "Train")
MECHANISMS = PageSpec("screens/mechanisms.py", "Mechanisms", ":material/science:", "Understand")
ATTACK_LAB = PageSpec("screens/attack_lab.py", "Attack lab", ":material/sports_esports:", "Understand")

#: In menu order.
PAGES = (HOME, NEW_RUN, MONITOR, ROOM, COMPARE, SAMPLES, REPORT, MECHANISMS, ATTACK_LAB)
#: The last path segment of every page's address (to find the app's root in a page URL).
URL_PATHS = frozenset(p.url_path for p in PAGES)
