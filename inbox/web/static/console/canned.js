// Canned responses in the composer: "/" plus a few letters lists the organization's
// answers; the chosen one goes in with its placeholders filled in.

import { h } from "./dom.js";

const MAX_SHOWN = 8;

/** The organization's canned responses: the store's live list when the app keeps one,
 * else read once and kept fresh from the canned_response.* events. */
export function cannedSource(ctx) {
  let cache = null;
  let loading = null;
  const stale = () => {
    cache = null;
  };
  const offs = ["canned_response.created", "canned_response.updated", "canned_response.deleted"].map(
    (type) => ctx.live.on(type, stale),
  );
  return {
    async list() {
      if (Array.isArray(ctx.store?.canned)) return ctx.store.canned;
      if (cache) return cache;
      loading ??= ctx
        .api("GET", "/api/canned-responses", { query: { limit: 200 } })
        .then((page) => (cache = page.data))
        .catch(() => [])
        .finally(() => (loading = null));
      return loading;
    },
    close() {
      for (const off of offs) off();
    },
  };
}

/** `{{contact.name}}`, `{{contact.phone}}`, `{{contact.email}}`, `{{agent.name}}`; an unknown
 * or empty one is left for the agent to see and fill. */
export function fillPlaceholders(text, values) {
  return text.replace(/\{\{\s*([a-z_]+)\.([a-z_]+)\s*\}\}/gi, (whole, scope, field) => {
    const value = values?.[scope.toLowerCase()]?.[field.toLowerCase()];
    return value === undefined || value === null || value === "" ? whole : String(value);
  });
}

/** The "/code" being typed just before the caret, or null. */
export function slashQuery(text, caret) {
  const match = /(^|\s)\/([\w-]*)$/.exec(text.slice(0, caret));
  return match ? { query: match[2].toLowerCase(), start: caret - match[2].length - 1 } : null;
}

export class CannedPicker {
  constructor(textarea, onPick) {
    this.textarea = textarea;
    this.onPick = onPick;
    this.items = [];
    this.active = 0;
    this.el = h("ul", {
      class: "canned",
      role: "listbox",
      id: `canned-${Math.random().toString(36).slice(2)}`,
      "aria-label": "Canned responses",
      hidden: true,
    });
  }

  get open() {
    return !this.el.hidden;
  }

  show(all, query) {
    // Short codes that start with what was typed first, then those holding it, then texts.
    const rank = (c) =>
      c.short_code.startsWith(query) ? 0 : c.short_code.includes(query) ? 1 : c.content.toLowerCase().includes(query) ? 2 : 3;
    this.items = all
      .map((c) => [rank(c), c])
      .filter(([r]) => r < 3)
      .sort((a, b) => a[0] - b[0] || a[1].short_code.localeCompare(b[1].short_code))
      .map(([, c]) => c)
      .slice(0, MAX_SHOWN);
    this.active = 0;
    if (!this.items.length) {
      this.el.replaceChildren(h("li", { class: "canned-empty", role: "option", "aria-disabled": "true" }, `No canned response matches /${query}`));
    }
    this.render();
    this.el.hidden = false;
    this.textarea.setAttribute("aria-controls", this.el.id);
    this.textarea.setAttribute("aria-expanded", "true");
  }

  render() {
    if (!this.items.length) return;
    this.el.replaceChildren(
      ...this.items.map((c, i) =>
        h(
          "li",
          {
            id: `${this.el.id}-${i}`,
            role: "option",
            "aria-selected": i === this.active ? "true" : "false",
            class: i === this.active ? "active" : "",
            onmousedown: (e) => {
              e.preventDefault();
              this.onPick(c);
            },
          },
          h("strong", {}, `/${c.short_code}`),
          h("span", {}, c.content),
        ),
      ),
    );
    this.textarea.setAttribute("aria-activedescendant", `${this.el.id}-${this.active}`);
  }

  hide() {
    this.el.hidden = true;
    this.textarea.removeAttribute("aria-activedescendant");
    this.textarea.setAttribute("aria-expanded", "false");
  }

  /** Keys while the list is open; true when the key was the list's. */
  key(event) {
    if (!this.open) return false;
    if (event.key === "Escape") {
      this.hide();
      return true;
    }
    if (!this.items.length) return false;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      this.active = (this.active + step + this.items.length) % this.items.length;
      this.render();
      return true;
    }
    if (event.key === "Enter" || event.key === "Tab") {
      this.onPick(this.items[this.active]);
      return true;
    }
    return false;
  }
}
