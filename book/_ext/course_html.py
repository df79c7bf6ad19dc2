"""Sphinx glue for the offline HTML book: three fixes for the third-party JavaScript that myst-nb and friends load.

1. sphinx-thebe registers its inline config script twice under Sphinx 7.4, and the page then throws
   "Identifier 'THEBE_JS_URL' has already been declared": identical scripts are dropped from each page.
2. The ipywidgets HTML manager (embed-amd.js) loads its icon fonts relative to its requirejs module URI, which
   defaults to the page's folder: a global `require` config, set before require.js loads, points it at our copy.
3. The HTML manager typesets widget labels with MathJax 2's `MathJax.Hub.Queue`, while the book loads MathJax 3:
   a deferred shim, run after MathJax 3, routes that call to `MathJax.typesetPromise`.
"""
from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx

VENDOR = "_static/vendor"
MATHJAX2_SHIM = """\
(function () {
  var hub = {Queue: function (job) {
    var el = Array.isArray(job) ? job[2] : undefined, mj = window.MathJax;
    if (mj && mj.typesetPromise) { mj.typesetPromise(el ? [el] : undefined); }
  }};
  function attach(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      Object.defineProperty(mj, "Hub", {value: hub, enumerable: false, configurable: true, writable: true});
    }
    return mj;
  }
  // MathJax 3 replaces window.MathJax (config object, then the real one): give every one of them a Hub.
  var current = attach(window.MathJax);
  Object.defineProperty(window, "MathJax", {configurable: true, enumerable: true,
    get: function () { return current; }, set: function (value) { current = attach(value); }});
})();"""


def _page_context(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    if "pathto" not in context:
        return
    vendor = context["pathto"](VENDOR, 1)
    widget_module = "@jupyter-widgets/html-manager/dist"
    app.add_js_file(None, body=f'var require = {{paths: {{"{widget_module}": "{vendor}"}}}};', priority=400)
    app.add_js_file(None, body=MATHJAX2_SHIM, priority=400)


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in sorted(scripts, key=lambda js: getattr(js, "priority", 500)):
        # the copies differ only in priority, so compare what the page would load or run
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("html-page-context", _page_context, priority=400)
    # Sphinx stops this event at the first handler that returns a template name, so run early; the duplicates
    # were registered before any page is written.
    app.connect("html-page-context", _dedupe_scripts, priority=401)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
