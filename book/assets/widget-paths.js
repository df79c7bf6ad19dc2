// The ipywidgets bundles (vendor/embed-amd.js) find their icon fonts next to their own module URL, which require.js
// derives from the module name: "@jupyter-widgets/base" would resolve against the page, e.g. book/@jupyter-widgets/.
// Point that name at the vendored files so the fonts load from _static/vendor/ on every page, at any depth.
(function () {
  var here = document.currentScript.src.split("?")[0];
  requirejs.config({paths: {"@jupyter-widgets": here.slice(0, here.lastIndexOf("/") + 1) + "vendor"}});
})();
