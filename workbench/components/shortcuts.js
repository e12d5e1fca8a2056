// Keyboard shortcuts for a page: each key in model.shortcut_keys, pressed while the analyst
// is not typing into a field, is sent to Python (model.send_msg) and taken from the
// browser.  Bokeh renders widgets inside shadow roots, so the element a key went to
// is the first of the event's composed path, not its (retargeted) target.

function typing(event) {
  const element = event.composedPath()[0];
  if (!(element instanceof HTMLElement)) return false;
  return element.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(element.tagName);
}

export function render({ model, el, view }) {
  view._vigilShortcutsOff?.();  // a re-render drops "remove" handlers without calling them
  const onKey = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat || typing(event)) return;
    if (!model.shortcut_keys.includes(event.key)) return;
    event.preventDefault();
    model.send_msg({ key: event.key });
  };
  document.addEventListener("keydown", onKey);
  view._vigilShortcutsOff = () => document.removeEventListener("keydown", onKey);
  model.on("remove", view._vigilShortcutsOff);
  const marker = document.createElement("div");
  marker.className = "shortcuts";
  marker.dataset.keys = model.shortcut_keys.join(" ");
  el.replaceChildren(marker);
}
