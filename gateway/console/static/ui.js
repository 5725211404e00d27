// Small DOM helpers shared by the pages: building elements, the page-wide notice, status lines,
// number formats, and the arm picker that Side by side and Compare share.

// el("p", {class: "hint", text: "..."}, child, ...): attributes, `text`, `on<event>` listeners.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// The page-wide alert under the tabs: an error from any page, until the next success or dismissal.
export function notify(error) {
  const notice = $("#notice");
  if (!error) {
    notice.hidden = true;
    $("#notice-text").textContent = "";
    return;
  }
  $("#notice-text").textContent = error.message || String(error);
  notice.hidden = false;
}

// A status line (role="status" elements are live regions): text, and whether it reports an error.
export function status(node, message, isError = false) {
  node.textContent = message;
  node.classList.toggle("error", isError);
}

export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  return Number.isInteger(value) ? String(value) : value.toFixed(digits);
}

// A number with exactly `digits` decimals ("0.500"), so a column of scores lines up.
export function fixed(value, digits = 3) {
  return value === null || value === undefined || Number.isNaN(value) ? "–" : Number(value).toFixed(digits);
}

export function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 ** 2) return `${(count / 1024).toFixed(1)} KiB`;
  return `${(count / 1024 ** 2).toFixed(1)} MiB`;
}

export function date(unix) {
  return unix ? new Date(unix * 1000).toLocaleString() : "–";
}

// Checkboxes for every arm in `arms` (ids), plus a field that adds any other model name
// (e.g. "my-adapter@docs"); selected() lists the checked ones in order.
export function armPicker(fieldset, idPrefix) {
  const list = el("div", { class: "arms" });
  const custom = el("input", { id: `${idPrefix}-custom`, type: "text", placeholder: "adapter@kb" });
  custom.autocomplete = "off";
  const add = el("button", { type: "button", text: "Add arm" });
  fieldset.replaceChildren(
    el("legend", { text: "Arms" }),
    list,
    el("div", { class: "inline" }, el("label", { for: custom.id, text: "Other model name" }), custom, add),
  );
  const addArm = (id, checked) => {
    if ([...list.querySelectorAll("input")].some((box) => box.value === id)) return;
    const box = el("input", { type: "checkbox", id: `${idPrefix}-arm-${list.children.length}`, value: id, checked });
    list.append(el("div", { class: "check" }, box, el("label", { for: box.id, text: id })));
  };
  add.addEventListener("click", () => {
    const id = custom.value.trim();
    if (id) addArm(id, true);
    custom.value = "";
    custom.focus();
  });
  custom.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      add.click();
    }
  });
  return {
    set(arms, defaultChecked = 2) {
      const checked = new Set(this.selected());
      const extra = [...checked].filter((id) => !arms.includes(id));
      list.replaceChildren();
      const keep = checked.size > 0;
      [...arms, ...extra].forEach((id, i) => addArm(id, keep ? checked.has(id) : i < defaultChecked));
    },
    selected() {
      return [...list.querySelectorAll("input:checked")].map((box) => box.value);
    },
  };
}

// Run `work`; an error (other than a deliberate abort) goes to the page-wide notice.
export async function attempt(work) {
  try {
    return await work();
  } catch (error) {
    if (error.name !== "AbortError") notify(error);
    return undefined;
  }
}
