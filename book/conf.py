"""Sphinx settings of the course's book (Jupyter Book 1's stack: Sphinx, MyST-NB, sphinx-book-theme).

`tools/build_book.py` prepares the pages into outputs/book-src/ and runs Sphinx with this folder as its
configuration. The book must work with no network: the notebooks are not executed (their committed outputs
are the figures), MathJax is served from the site itself (the tool copies it to _static/mathjax/), and
nothing that fetches at build or view time is enabled (no thebe, no analytics, no widget scripts, no
repository buttons). The launch links of each notebook page are plain links written by the tool.
"""

project = "pegasus-course"
author = "the pegasus-course authors"
copyright = "2026, the pegasus-course authors (MIT licence)"
root_doc = "index"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# The notebooks are shown as committed: never executed, their outputs are the book's figures.
nb_execution_mode = "off"
nb_merge_streams = True  # a cell's printed lines read as one block, as in JupyterLab
nb_output_stderr = "show"  # the progress bars say how long each long cell took
nb_ipywidgets_js = {}  # widget scripts come from a CDN: the explorer is shown as its static strip instead
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_update_mathjax = False  # its settings are MathJax 3/4's; MathJax 2 is configured below
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]

# MathJax 2.7 from the site itself (jupyter-server-mathjax ships it; the tool copies it to _static/mathjax/),
# with its STIX web fonts and never a font installed on the reader's machine. Its font probe "MathJax_Blank"
# is declared with url('about:blank'), which Chromium reports as a console error: a local() name that does
# not exist probes the same way without a request.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                "processEscapes": True, "processEnvironments": True, "processRefs": False},
    "HTML-CSS": {"availableFonts": [], "preferredFont": None, "webFont": "STIX-Web", "imageFont": None,
                 "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "local('MathJax_Blank')"}}},
    # the hidden MathML kept for screen readers names TeX web fonts this copy lacks: read local ones only
    "NativeMML": {"styles": {f"@font-face /*{i}*/": {"font-family": family, "src": f"local('{family[:-4]}')"}
                             for i, family in enumerate(["MathJax_Caligraphic-WEB", "MathJax_Caligraphic-WEB",
                                                         "MathJax_AMS-WEB", "MathJax_Script-WEB",
                                                         "MathJax_Fraktur-WEB", "MathJax_Fraktur-WEB"], 1)}},
    "messageStyle": "none",
    "showMathMenu": False,
}

html_theme = "sphinx_book_theme"
html_title = "pegasus-course"
html_context = {"default_mode": "light"}  # the theme reports an empty mode as an error in the console
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False  # each notebook page offers the committed .ipynb itself, not Sphinx's copy
html_show_sourcelink = False
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "use_issues_button": False,
    "use_source_button": False,
    "launch_buttons": {},
    "navigation_with_keys": False,
    "icon_links": [],
}
