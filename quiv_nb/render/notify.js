// The frontend half of quiv_nb's opt-in notifications (see notify.py): an anywidget ES module.
//
// The kernel sends {kind: "quiv-notify", title, body, tag} when a job of the watched task ends.
// `initialize` runs once per widget model, so a cell shown in two views still notifies once; a
// desktop notification appears only while the page is hidden (the user is elsewhere) and the
// browser has granted permission. Each view shows what is being watched, a button to ask for
// permission (browsers only allow that from a click), and the last job end it heard of.

const BELL =
  '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true"><path fill="currentColor" d="M12 22a2 2 0 0 0 ' +
  '2-2h-4a2 2 0 0 0 2 2zm6-6V11c0-3.07-1.64-5.64-4.5-6.32V4a1.5 1.5 0 0 0-3 0v.68C7.63 5.36 6 7.92 6 11v5l-2 2v1h16v-1z"/></svg>';

const supported = () => typeof window.Notification === "function";

function permission() {
  return supported() ? window.Notification.permission : "unsupported";
}

function notify(msg) {
  if (document.visibilityState !== "hidden" || permission() !== "granted") return false;
  try {
    // One notification per task at a time: a newer job end replaces the older one (same tag).
    new window.Notification(msg.title, { body: msg.body, tag: msg.tag });
    return true;
  } catch (err) {
    // Some browsers (Chrome on Android) only allow notifications from a service worker.
    console.warn("quiv_nb: could not show a notification", err);
    return false;
  }
}

function initialize({ model }) {
  const onMessage = (msg) => {
    if (msg && msg.kind === "quiv-notify") notify(msg);
  };
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "quiv-notify";
  // An inline SVG bell: an emoji would need an emoji font, which many Linux machines lack.
  const bell = document.createElement("span");
  bell.className = "quiv-notify-bell";
  bell.innerHTML = BELL;
  const text = document.createElement("span");
  text.className = "quiv-notify-text";
  const button = document.createElement("button");
  button.className = "quiv-notify-enable jupyter-button";
  button.textContent = "Enable notifications";
  const last = document.createElement("span");
  last.className = "quiv-notify-last";
  root.append(bell, text, button, last);
  el.appendChild(root);

  const update = () => {
    const task = model.get("task_name");
    const state = permission();
    root.dataset.permission = state;
    button.style.display = state === "default" ? "" : "none";
    if (state === "granted") {
      text.textContent = `Notifies when a job of '${task}' ends while this tab is hidden.`;
    } else if (state === "denied") {
      text.textContent = `Notifications for '${task}' are blocked in this browser's site settings.`;
    } else if (state === "unsupported") {
      text.textContent = `This frontend cannot show desktop notifications for '${task}'.`;
    } else {
      text.textContent = `Notify when a job of '${task}' ends?`;
    }
  };
  button.addEventListener("click", async () => {
    try {
      await window.Notification.requestPermission();
    } finally {
      update();
    }
  });
  const onMessage = (msg) => {
    if (!msg || msg.kind !== "quiv-notify") return;
    last.textContent = `Last: ${msg.title} (${new Date().toLocaleTimeString()})`;
    last.title = msg.body;
    update(); // permission may have changed in the browser's settings meanwhile
  };
  model.on("msg:custom", onMessage);
  model.on("change:task_name", update);
  update();
  return () => {
    model.off("msg:custom", onMessage);
    model.off("change:task_name", update);
  };
}

export default { initialize, render };
