/*
 * Loaded on pages with interactive figures, after require.js and before the ipywidgets
 * HTML manager (embed-amd.js), all three served from the book's own _static/ folder.
 *
 * The widget bundles compute the URL of their icon fonts from their AMD module ids, e.g.
 * "@jupyter-widgets/controls" -> <require.js baseUrl>/@jupyter-widgets/controls.js, which
 * does not exist in the book, so the fonts 404. Mapping the "@jupyter-widgets" ids onto the
 * folder that holds embed-amd.js and the fonts makes those URLs resolve.
 */
(function () {
  "use strict";
  var src = document.currentScript && document.currentScript.src;
  if (!src || typeof window.require === "undefined" || !window.require.config) {
    console.error("widgets-require-config.js must be loaded right after require.js");
    return;
  }
  var dir = src.slice(0, src.lastIndexOf("/") + 1) + "jupyter-widgets";
  window.__jupyter_widgets_assets_path__ = dir + "/";
  window.require.config({
    paths: {
      "@jupyter-widgets": dir,
      "@jupyter-widgets/html-manager/dist": dir,
    },
  });
})();
