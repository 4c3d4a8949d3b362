// Confirmation before destructive forms: the text comes from data-confirm, never from
// inline handlers (which would run names and emails as code).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (message && !window.confirm(message)) event.preventDefault();
});

// Drag and drop in the rule builder: dropping a rule card or a condition row on a sibling
// posts the move as the form's action; the server reorders and sends back the builder.
// The ↑ ↓ buttons do the same from the keyboard.
let dragged = null;
document.addEventListener("dragstart", (event) => {
  const item = event.target.closest ? event.target.closest("[data-move]") : null;
  if (!item) return;
  dragged = item;
  item.classList.add("dragging");
  event.dataTransfer.setDragImage(item, 12, 12);
  event.dataTransfer.effectAllowed = "move";
  event.dataTransfer.setData("text/plain", item.dataset.move);
  event.stopPropagation();
});
document.addEventListener("dragend", () => {
  document.querySelectorAll(".dragging, .drop-target").forEach((el) => el.classList.remove("dragging", "drop-target"));
  dragged = null;
});
function dropTarget(event) {
  if (!dragged || !event.target.closest) return null;
  let target = event.target.closest("[data-move]");
  while (target && target.parentElement !== dragged.parentElement) {
    target = target.parentElement ? target.parentElement.closest("[data-move]") : null;
  }
  return target && target !== dragged ? target : null;
}
document.addEventListener("dragover", (event) => {
  const target = dropTarget(event);
  if (!target) return;
  event.preventDefault();
  document.querySelectorAll(".drop-target").forEach((el) => el.classList.remove("drop-target"));
  target.classList.add("drop-target");
});
document.addEventListener("drop", (event) => {
  const target = dropTarget(event);
  if (!target) return;
  event.preventDefault();
  const form = dragged.closest("form");
  const action = form.querySelector("#builder-drop-action");
  const to = Array.prototype.indexOf.call(target.parentElement.children, target);
  action.value = dragged.dataset.move + ":" + to;
  form.requestSubmit();
});

// A select that shows another view as soon as it changes (the fulfilment queue's location).
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});

// A problem listed in the rule builder (or on the publish page) links to the control at fault:
// following the link brings it to the middle of the screen and puts the cursor in it.
function focusControl(id) {
  const control = id ? document.getElementById(id) : null;
  if (!control) return false;
  control.scrollIntoView({ block: "center" });
  if (control.focus) control.focus({ preventScroll: true });
  return true;
}
document.addEventListener("click", (event) => {
  const link = event.target.closest ? event.target.closest("a[data-focus]") : null;
  if (link && focusControl(link.dataset.focus)) event.preventDefault();
});
window.addEventListener("DOMContentLoaded", () => {
  if (location.hash.length > 1 && document.getElementById("builder")) focusControl(decodeURIComponent(location.hash.slice(1)));
});

// Print views (pick lists, packing slips): a button that opens the browser's print dialog.
document.addEventListener("click", (event) => {
  if (event.target.closest && event.target.closest("[data-print]")) window.print();
});

// Forms marked data-check (with novalidate, so the browser shows no bubble of its own): on submit,
// every field the browser can already tell is wrong is marked at once, beside it, in the words the
// server would use (data-msg-required, -pattern, -range, -length, -number, from core.forms); the first
// is focused and nothing is sent. The server checks everything again and answers the same way.
(() => {
  const words = (field) => {
    const v = field.validity, d = field.dataset;
    if (v.valueMissing) return d.msgRequired || "This field is required.";
    if (v.badInput || v.stepMismatch) return d.msgNumber || "Enter a number.";
    if (v.typeMismatch) return d.msgType || (field.type === "email" ? "Enter an email address such as name@example.com." : field.validationMessage);
    if (v.patternMismatch) return d.msgPattern || field.title || field.validationMessage;
    if (v.rangeUnderflow || v.rangeOverflow) return d.msgRange || field.validationMessage;
    if (v.tooShort || v.tooLong) return d.msgLength || field.validationMessage;
    return field.validationMessage;
  };
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-check")) return;
    form.querySelectorAll(".field-error[data-client]").forEach((note) => note.remove());
    let first = null;
    for (const field of form.elements) {
      if (!field.name || !field.willValidate || field.validity.valid) continue;
      const id = field.name + "-error";
      let note = document.getElementById(id);
      if (!note) {
        note = document.createElement("small");
        note.id = id;
        note.className = "field-error";
        note.dataset.client = "";
        field.insertAdjacentElement("afterend", note);
      }
      note.textContent = words(field);
      field.setAttribute("aria-invalid", "true");
      const described = (field.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(id)) field.setAttribute("aria-describedby", [id, ...described].join(" "));
      first = first || field;
    }
    if (first) {
      event.preventDefault();
      event.stopImmediatePropagation();
      first.focus();
    }
  }, true);
  // A corrected field loses the browser's mark at once (the server's stays until the next answer).
  document.addEventListener("input", (event) => {
    const field = event.target;
    if (!field.form || !field.form.hasAttribute("data-check") || !field.validity || !field.validity.valid) return;
    const note = document.getElementById(field.name + "-error");
    if (note && note.hasAttribute("data-client")) {
      note.remove();
      field.removeAttribute("aria-invalid");
    }
  });
  // The form shown again with the server's messages: the cursor goes to the first field to correct.
  window.addEventListener("DOMContentLoaded", () => {
    const first = document.querySelector("form[data-check] [aria-invalid=true]");
    if (first && !document.querySelector("[autofocus]")) first.focus();
  });
})();

// An error page after a refused form: back to the form, with what was typed still in it.
document.addEventListener("click", (event) => {
  if (event.target.closest && event.target.closest("[data-history-back]")) history.back();
});
