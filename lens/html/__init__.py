"""Self-contained interactive HTML reports (no network request of any kind).

Each view is a function from lens result objects or plain arrays to a :class:`View`; a
:class:`Report` puts views on one page with the renderer's scripts and styles inlined::

    Report("my prompt").add(logit_lens_view(res), attention_view(pat, toks)).write("report.html")
"""

from lens.html.attention import attention_patterns, attention_view
from lens.html.circuit import circuit_view
from lens.html.features import feature_cards_view
from lens.html.heatmap import heatmap_view, lines_view
from lens.html.lens_view import logit_lens_view
from lens.html.page import Report, View, safe_json
from lens.html.patching import patching_view, trace_view
from lens.html.study import index_page, study_page, write_study_html

__all__ = [
    "Report",
    "View",
    "attention_patterns",
    "attention_view",
    "circuit_view",
    "feature_cards_view",
    "heatmap_view",
    "index_page",
    "lines_view",
    "logit_lens_view",
    "patching_view",
    "safe_json",
    "study_page",
    "trace_view",
    "write_study_html",
]
