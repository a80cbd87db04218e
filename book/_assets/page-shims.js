/*
 * Runs first on every page of the book (html_js_files, priority 100, not deferred), before
 * the theme's deferred Font Awesome script, MathJax and the ipywidgets manager.
 *
 * 1. Font Awesome: the theme's script normally watches the page and swaps every
 *    <i class="fa ..."> it finds for an <svg>. The ipywidgets Play button draws such <i>
 *    icons after the page has loaded; when they are swapped the widget code throws, which
 *    stops the client-side links (jslink) of the interactive figures. Turning the watcher off
 *    keeps the widget icons as <i> elements, drawn by the widgets' own icon font.
 *
 * 2. MathJax: ipywidgets still calls the MathJax 2 API, MathJax.Hub.Queue(["Typeset", ...]),
 *    but the book loads MathJax 3. A small MathJax.Hub is attached to whatever object
 *    window.MathJax holds (the configuration object first, then MathJax 3 itself, which
 *    replaces it) and forwards typesetting requests to MathJax.typesetPromise.
 *
 * 3. Sidebar buttons: the theme wires only the first `.primary-toggle` / `.secondary-toggle` of
 *    the page (the hidden one in the top header) to its drawers, so the visible buttons in the
 *    article header did nothing: on a phone the navigation could not be opened. A click on any
 *    other toggle is passed on to the first one. (book-layout.css also shows the "Contents"
 *    button up to 1599 px, where the right-hand sidebar now lives in that drawer.)
 */
(function () {
  "use strict";

  window.FontAwesomeConfig = Object.assign({}, window.FontAwesomeConfig || {}, {
    observeMutations: false,
  });

  var current = window.MathJax;
  var pending = [];

  function mathJaxReady() {
    return current && current.startup && current.startup.promise && current.typesetPromise;
  }

  function typeset(elements) {
    if (!mathJaxReady()) {
      pending.push.apply(pending, elements);
      return;
    }
    var mj = current;
    mj.startup.promise
      .then(function () {
        return mj.typesetPromise(elements.length ? elements : undefined);
      })
      .catch(function (err) {
        console.warn("MathJax typeset of a widget failed:", err);
      });
  }

  function flushPending() {
    if (pending.length && mathJaxReady()) {
      var elements = pending.filter(function (el) {
        return el && el.isConnected;
      });
      pending = [];
      typeset(elements);
    }
  }

  var Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (typeof job === "function") {
          job();
        } else if (Array.isArray(job) && job[0] === "Typeset") {
          typeset(job[2] ? [job[2]] : []);
        }
      }
    },
    Config: function () {},
    Register: { StartupHook: function () {}, MessageHook: function () {} },
  };

  function attachHub(obj) {
    if (obj && typeof obj === "object" && !Object.prototype.hasOwnProperty.call(obj, "Hub")) {
      // not enumerable, so MathJax 3 does not read it as a configuration block
      Object.defineProperty(obj, "Hub", { value: Hub, enumerable: false, configurable: true });
    }
  }

  attachHub(current);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    enumerable: true,
    get: function () {
      return current;
    },
    set: function (value) {
      current = value;
      attachHub(value);
    },
  });
  window.addEventListener("load", flushPending);

  document.addEventListener("DOMContentLoaded", function () {
    ["primary", "secondary"].forEach(function (kind) {
      var buttons = document.querySelectorAll("." + kind + "-toggle");
      var wired = buttons[0];
      for (var i = 1; i < buttons.length; i++) {
        buttons[i].addEventListener("click", function (event) {
          event.preventDefault();
          event.stopPropagation();
          wired.click();
        });
      }
    });
  });
})();
