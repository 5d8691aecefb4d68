// Keyboard shortcuts of the review panel (fiftyone_dedup/review_panel.py).
// Plain JavaScript loaded by the App as this plugin's js_bundle (no build
// step): it registers the component "DedupReviewKeys", which the panel
// renders invisibly; while the panel is open, its keys trigger the panel's
// Python callbacks named in the view (on_next, on_previous, ...).
(function () {
  "use strict";
  var React = window.React;
  var fop = window.__fop__;
  var foo = window.__foo__;
  var fosp = window.__fosp__;
  if (!React || !fop || !foo || !fosp) {
    console.error("fiftyone_dedup: the App's plugin globals are missing; no review keys");
    return;
  }

  // key -> the view's callback name
  var KEYS = {
    j: "on_next", ArrowRight: "on_next",
    k: "on_previous", ArrowLeft: "on_previous",
    a: "on_accept", x: "on_reject",
    n: "on_not_duplicate", s: "on_keep",
  };

  function typing(target) {
    if (!target || !target.closest) return false;
    return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true'], [role='slider'], [role='listbox']");
  }

  function DedupReviewKeys(props) {
    var view = (props.schema && props.schema.view) || {};
    var panelId = fosp.usePanelId();
    var trigger = foo.usePanelEvent();
    var latest = React.useRef();
    latest.current = { view: view, panelId: panelId, trigger: trigger };
    React.useEffect(function () {
      function onKey(event) {
        if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
        if (typing(event.target)) return;
        // the sample modal has arrow keys of its own
        if (document.querySelector("[data-cy='modal']")) return;
        var name = KEYS[event.key];
        var now = latest.current;
        var operator = name && now.view[name];
        if (!operator) return;
        // before the focused control (the Run dropdown would take the key)
        event.preventDefault();
        event.stopPropagation();
        now.trigger(now.panelId, { operator: operator, params: now.view.params || {} });
      }
      // the capture phase: the App's own controls stop some keys
      window.addEventListener("keydown", onKey, true);
      return function () { window.removeEventListener("keydown", onKey, true); };
    }, []);
    return React.createElement("span", {
      "data-cy": "dedup-review-keys",
      style: { fontSize: "0.8em", opacity: 0.7 },
    }, view.hint || "");
  }

  fop.registerComponent({
    name: "DedupReviewKeys",
    label: "Dedup review keys",
    component: DedupReviewKeys,
    type: fop.PluginComponentType.Component,
    activator: function () { return true; },
  });
})();
