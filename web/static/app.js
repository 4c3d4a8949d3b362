// Confirmation before destructive forms: the text comes from data-confirm, never from
// inline handlers (which would run names and emails as code).
// A form marked data-confirm-if-chosen (the order's cancel form) asks only when something is chosen
// in it, a ticked box or a number above 0: with nothing chosen it is sent without a question, and the
// server's answer says what to choose (as it does without JavaScript).
const somethingChosen = (form) => Array.prototype.some.call(form.elements, (field) =>
  (field.type === "checkbox" && field.checked) || (field.type === "number" && Number(field.value) > 0));
document.addEventListener("submit", (event) => {
  const form = event.target;
  const message = form.dataset ? form.dataset.confirm : undefined;
  if (!message || (form.hasAttribute("data-confirm-if-chosen") && !somethingChosen(form))) return;
  if (!window.confirm(message)) event.preventDefault();
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
// server would use (data-msg-required, -pattern, -range, -length, -number, -type, from core.forms); the
// first is focused and nothing is sent. The server checks everything again and answers the same way.
// Besides what HTML checks by itself, a field may ask for:
//   data-msg-list   its value is one of its datalist's ("{value}" in the words stands for what was typed;
//                   data-list-case="any": in any case, as the server reads country codes);
//   data-pair=NAME  not empty when the field NAME of the form is filled (an opening time and its closing);
//   data-after=NAME later than the field NAME when both are filled (data-msg-after);
//   min / max       on a text field typed as a number (inputmode decimal or numeric, read with a comma
//                   or a dot), its range (data-msg-range).
// A field the person can't see (the tracking link while a listed carrier is chosen) is not checked.
(() => {
  const words = (field) => {
    const v = field.validity, d = field.dataset;
    if (v.valueMissing) return d.msgRequired || "This field is required.";
    if (v.badInput || v.stepMismatch) return d.msgNumber || d.msgType || "Enter a number.";
    if (v.typeMismatch) return d.msgType || (field.type === "email" ? "Enter an email address such as name@example.com." : field.validationMessage);
    if (v.patternMismatch) return d.msgPattern || field.title || field.validationMessage;
    if (v.rangeUnderflow || v.rangeOverflow) return d.msgRange || field.validationMessage;
    if (v.tooShort || v.tooLong) return d.msgLength || field.validationMessage;
    return field.validationMessage;  // our own checks below: their words are the message itself
  };
  const other = (field, name) => (name && field.form ? field.form.elements.namedItem(name) : null);
  const ownProblem = (field) => {
    const d = field.dataset, value = (field.value || "").trim();
    if (d.msgPair && !value) {
      const pair = other(field, d.pair);
      if (pair && pair.value.trim()) return d.msgPair;
    }
    if (!value) return "";
    if (d.msgList && field.list) {
      const any = d.listCase === "any";
      const wanted = any ? value.toUpperCase() : value;
      const known = Array.prototype.some.call(field.list.options, (o) => (any ? o.value.toUpperCase() : o.value) === wanted);
      if (!known) return d.msgList.split("{value}").join(wanted);
    }
    if (d.msgAfter) {
      const before = other(field, d.after);
      if (before && before.value && value <= before.value) return d.msgAfter;
    }
    if (field.type === "text" && /^(decimal|numeric)$/.test(field.inputMode || "") && (field.hasAttribute("min") || field.hasAttribute("max"))) {
      const number = Number(value.replace(",", "."));
      const lo = field.hasAttribute("min") ? Number(field.getAttribute("min")) : -Infinity;
      const hi = field.hasAttribute("max") ? Number(field.getAttribute("max")) : Infinity;
      if (Number.isFinite(number) && (number < lo || number > hi)) return d.msgRange || "";
    }
    return "";
  };
  // Our own checks become the fields' custom validity, so that the loop below sees them as the browser's.
  const ownChecks = (form) => {
    for (const field of form.elements) {
      if (!field.setCustomValidity || !field.name) continue;
      field.setCustomValidity("");
      if (!field.validity.valid) continue;  // the browser's own finding comes first
      const problem = ownProblem(field);
      if (problem) field.setCustomValidity(problem);
    }
  };
  const shown = (field) => field.getClientRects().length > 0;
  // The message beside a field: the one its aria-describedby names (the server's, or ours from before),
  // else a new one, named after the field's id (unique even when several forms have the same fields).
  const noteOf = (field) => {
    for (const id of (field.getAttribute("aria-describedby") || "").split(" ")) {
      const note = id ? document.getElementById(id) : null;
      if (note && note.classList.contains("field-error")) return note;
    }
    return null;
  };
  // Our message taken away (corrected, or about to be told again): the field is no longer marked.
  const unmark = (form, note) => {
    const field = form.querySelector(`[aria-describedby~="${note.id}"]`);
    note.remove();
    if (!field) return;
    const rest = field.getAttribute("aria-describedby").split(" ").filter((id) => id && id !== note.id);
    if (rest.length) field.setAttribute("aria-describedby", rest.join(" "));
    else field.removeAttribute("aria-describedby");
    if (!noteOf(field)) field.removeAttribute("aria-invalid");
  };
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-check")) return;
    form.querySelectorAll(".field-error[data-client]").forEach((note) => unmark(form, note));
    ownChecks(form);
    let first = null;
    for (const field of form.elements) {
      if (!field.name || !field.willValidate || field.validity.valid || !shown(field)) continue;
      let note = noteOf(field);
      if (!note) {
        note = document.createElement("small");
        note.id = (field.id || field.name) + "-error";
        note.className = "field-error";
        note.dataset.client = "";
        field.insertAdjacentElement("afterend", note);
      }
      note.textContent = words(field);
      field.setAttribute("aria-invalid", "true");
      const described = (field.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(note.id)) field.setAttribute("aria-describedby", [note.id, ...described].join(" "));
      first = first || field;
    }
    if (first) {
      event.preventDefault();
      event.stopImmediatePropagation();
      first.focus();
    }
  }, true);
  // A corrected field loses the browser's mark at once (the server's stays until the next answer); so
  // does its pair (a closing time that is now after the opening time just typed).
  const recheck = (event) => {
    const form = event.target.form;
    if (!form || !form.hasAttribute("data-check")) return;
    ownChecks(form);
    form.querySelectorAll(".field-error[data-client]").forEach((note) => {
      const field = form.querySelector(`[aria-describedby~="${note.id}"]`);
      if (!field || field.validity.valid) unmark(form, note);
    });
  };
  document.addEventListener("input", recheck);
  document.addEventListener("change", recheck);
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

// The top bar's search (every console page): "/" puts the cursor in it (unless one is typing in a field);
// as one types, htmx brings the grouped results into the list under it. ↓ ↑ choose a result (the box
// keeps the focus and names the chosen one in aria-activedescendant), Enter opens it (with none chosen,
// the form opens the page of results), Escape closes the list, a click elsewhere too.
(() => {
  const input = () => document.getElementById("top-search-input");
  const panel = () => document.getElementById("top-search-results");
  const options = () => Array.from(document.querySelectorAll("#top-search-results [role=option]"));
  const chosen = () => options().findIndex((o) => o.getAttribute("aria-selected") === "true");
  const choose = (index) => {
    const box = input();
    const all = options();
    all.forEach((o, n) => {
      o.setAttribute("aria-selected", n === index ? "true" : "false");
      o.classList.toggle("active", n === index);
    });
    if (box && all[index]) {
      box.setAttribute("aria-activedescendant", all[index].id);
      all[index].scrollIntoView({ block: "nearest" });
    } else if (box) {
      box.removeAttribute("aria-activedescendant");
    }
  };
  const show = (open) => {
    const box = input(), list = panel();
    if (!box || !list) return;
    open = open && (options().length > 0 || !!list.querySelector(".search-status")) && box.value.trim() !== "";
    list.hidden = !open;
    box.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) choose(-1);
  };
  const typing = (target) => target && target.closest &&
    (target.closest("input, textarea, select") || target.isContentEditable);
  document.addEventListener("keydown", (event) => {
    const box = input();
    if (!box) return;
    if (event.key === "/" && !event.ctrlKey && !event.metaKey && !event.altKey && !typing(event.target)) {
      event.preventDefault();
      box.focus();
      box.select();
      show(true);
      return;
    }
    if (event.target !== box) return;
    const all = options();
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!all.length) return;
      event.preventDefault();
      show(true);
      const now = chosen(), step = event.key === "ArrowDown" ? 1 : -1;
      choose(now < 0 ? (step > 0 ? 0 : all.length - 1) : (now + step + all.length) % all.length);
    } else if (event.key === "Enter") {
      const now = chosen();
      if (now >= 0 && !panel().hidden) {
        event.preventDefault();
        window.location.assign(all[now].href);
      }
    } else if (event.key === "Escape" && !panel().hidden) {
      event.preventDefault();
      show(false);
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.target === panel()) show(document.activeElement === input());
  });
  document.addEventListener("focusin", (event) => {
    if (event.target === input()) show(true);
  });
  document.addEventListener("click", (event) => {
    if (panel() && !panel().hidden && !(event.target.closest && event.target.closest("#top-search"))) show(false);
  });
  // A pointer over a result chooses it, so that Enter and the highlighted one agree.
  document.addEventListener("mousemove", (event) => {
    const option = event.target.closest ? event.target.closest("#top-search-results [role=option]") : null;
    if (option && option.getAttribute("aria-selected") !== "true") choose(options().indexOf(option));
  });
})();
