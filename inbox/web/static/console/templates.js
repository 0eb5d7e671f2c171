// WhatsApp templates and the reply window: the window shown in the conversation's header,
// a template picker that fills each parameter (with the contact's details where the
// parameter asks for them, as canned responses do), and the composer's switch to it once
// the window has closed.

import { h } from "./dom.js";
import { fillPlaceholders } from "./canned.js";

/** "Reply window closes in 3 h", "Reply window closed", or null where there is none. */
export function windowText(conversation, now = Date.now()) {
  const at = conversation?.reply_window_expires_at;
  if (!at) return null;
  const left = Date.parse(at) - now;
  if (left <= 0) return "Reply window closed";
  const minutes = Math.ceil(left / 60_000);
  return minutes < 60 ? `Reply window closes in ${minutes} min` : `Reply window closes in ${Math.floor(minutes / 60)} h`;
}

/** Whether only a template reaches the customer now. */
export function windowClosed(conversation, now = Date.now()) {
  const at = conversation?.reply_window_expires_at;
  return Boolean(at) && Date.parse(at) <= now;
}

/** A channel's approved templates, read once per channel for the page's life. */
const loaded = new Map();
export function approvedTemplates(ctx, channelId) {
  if (!loaded.has(channelId)) {
    const reading = ctx
      .api("GET", `/api/channels/${channelId}/templates`, { query: { status: "APPROVED" } })
      .then((page) => page.data)
      .catch((err) => {
        loaded.delete(channelId);
        throw err;
      });
    loaded.set(channelId, reading);
  }
  return loaded.get(channelId);
}

// What a parameter's name or place suggests from the contact.
function suggestion(name, position, contact) {
  const full = contact?.name || "";
  const first = full.split(/\s+/)[0] || "";
  const key = (name || "").toLowerCase();
  if (key.includes("first")) return first;
  if (key.includes("name")) return full;
  if (key.includes("phone")) return contact?.phone || "";
  if (key.includes("email")) return contact?.email || "";
  // A positional template's first body value is, by custom, whom it greets.
  return !name && position === 0 ? first : "";
}

function componentText(template, type) {
  return (template.components || []).find((c) => String(c.type).toUpperCase() === type)?.text || "";
}

/** The template picker: a select of the channel's approved templates and one field per
 * parameter; `request()` is the message's `template` object. */
export class TemplatePicker {
  constructor(ctx, { contact, idPrefix }) {
    this.ctx = ctx;
    this.contact = contact;
    this.idPrefix = idPrefix;
    this.templates = [];
    this.fields = [];
    this.select = h("select", { id: `${idPrefix}-template`, onchange: () => this.chosen() });
    this.params = h("div", { class: "template-params" });
    this.preview = h("p", { class: "template-preview", "aria-live": "polite" });
    this.status = h("p", { class: "muted" });
    this.el = h(
      "div",
      { class: "template-picker" },
      h("label", { for: this.select.id }, "Template"),
      this.select,
      this.status,
      this.params,
      this.preview,
    );
  }

  async load(channelId) {
    if (this.channelId === channelId) return;
    this.channelId = channelId;
    this.status.textContent = "Loading templates…";
    try {
      this.templates = await approvedTemplates(this.ctx, channelId);
      this.status.textContent = this.templates.length ? "" : "No approved templates on this channel.";
    } catch (err) {
      this.templates = [];
      this.status.textContent = `Templates could not be loaded: ${err.message}`;
    }
    this.select.replaceChildren(
      ...this.templates.map((t, i) => h("option", { value: String(i) }, `${t.name} (${t.language})`)),
    );
    this.chosen();
  }

  get template() {
    return this.templates[Number(this.select.value)] || null;
  }

  chosen() {
    const template = this.template;
    this.fields = [];
    if (!template) {
      this.params.replaceChildren();
      this.preview.textContent = "";
      return;
    }
    const needs = template.parameters;
    const contact = this.contact() || {};
    const field = (part, label, name, position) => {
      const input = h("input", {
        id: `${this.idPrefix}-${part}-${position}`,
        type: "text",
        value: suggestion(name, part === "body" ? position : -1, contact),
        oninput: () => this.render(),
      });
      this.fields.push({ part, name, input });
      return h("div", { class: "template-param" }, h("label", { for: input.id }, label), input);
    };
    const rows = [];
    const named = (part, need, what) => {
      if (!need) return;
      if (need.named) need.names.forEach((n, i) => rows.push(field(part, `${what} ${n}`, n, i)));
      else for (let i = 0; i < need.count; i++) rows.push(field(part, `${what} {{${i + 1}}}`, null, i));
    };
    named("header", needs.header, "Header");
    named("body", needs.body, "Body");
    needs.buttons.forEach((b, i) => rows.push(field("buttons", `Button ${b.index + 1} (${b.type})`, null, i)));
    this.params.replaceChildren(...rows);
    this.render();
  }

  values(part) {
    const contact = this.contact() || {};
    const me = this.ctx.store?.me;
    const agent = { name: me?.user?.name ?? me?.name ?? "" };
    const of = this.fields.filter((f) => f.part === part);
    const fill = (f) => fillPlaceholders(f.input.value, { contact, agent });
    const need = part === "buttons" ? null : this.template.parameters[part];
    if (need?.named) return Object.fromEntries(of.map((f) => [f.name, fill(f)]));
    return of.map(fill);
  }

  render() {
    const template = this.template;
    if (!template) return;
    const body = this.values("body");
    const value = (key, i) => (Array.isArray(body) ? body[i] : body[key]);
    let n = 0;
    const text = componentText(template, "BODY").replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, key) => {
      const filled = value(key, /^\d+$/.test(key) ? Number(key) - 1 : n++);
      return filled ? filled : whole;
    });
    this.preview.textContent = text;
  }

  /** The message's `template`, or null when none is chosen. */
  request() {
    const template = this.template;
    if (!template) return null;
    const parameters = {};
    for (const part of ["header", "body", "buttons"]) {
      const values = this.values(part);
      if (Array.isArray(values) ? values.length : Object.keys(values).length) parameters[part] = values;
    }
    return { name: template.name, language: template.language, parameters };
  }
}

/** The composer's template mode: shown instead of the text box while the conversation's
 * reply window is closed. */
export class TemplateMode {
  constructor(composer) {
    this.composer = composer;
    this.active = false;
    this.picker = new TemplatePicker(composer.ctx, {
      contact: () => ({ ...(composer.conversation()?.contact || {}), ...(composer.contact() || {}) }),
      idPrefix: `reply-${composer.conversationId}`,
    });
    this.notice = h("p", { class: "window-notice", role: "status" });
    this.el = h("div", { class: "template-mode", hidden: true }, this.notice, this.picker.el);
  }

  update(conversation) {
    clearTimeout(this.timer);
    const closed = windowClosed(conversation);
    if (!closed && conversation?.reply_window_expires_at) {
      // Closes while open: switch then, not at the next change.
      const left = Date.parse(conversation.reply_window_expires_at) - Date.now();
      this.timer = setTimeout(() => this.update(conversation), Math.min(left + 50, 2 ** 31 - 1));
    }
    this.active = closed && !this.composer.note.checked;
    this.el.hidden = !this.active;
    this.composer.textarea.hidden = this.active;
    if (!closed) return;
    this.notice.textContent =
      conversation.channel?.kind === "whatsapp"
        ? "The customer has not written for 24 hours: only a template reaches them now."
        : "The reply window has closed: the customer must write first.";
    if (conversation.channel?.kind === "whatsapp") this.picker.load(conversation.channel_id);
  }

  async submit() {
    const template = this.picker.request();
    if (!template || this.sending) return;
    this.composer.error.textContent = "";
    // One key per template message: a double click or a retry after a network error
    // never sends it twice.
    this.key ??= crypto.randomUUID();
    this.sending = true;
    try {
      const message = await this.composer.ctx.api("POST", `/api/conversations/${this.composer.conversationId}/messages`, {
        body: { template },
        idempotencyKey: this.key,
      });
      this.key = null;
      this.composer.log.upsert(message);
    } catch (err) {
      // Refused as asked (4xx): a changed request needs a key of its own.
      if (err.status > 0 && err.status < 500) this.key = null;
      this.composer.error.textContent = err.message;
    } finally {
      this.sending = false;
    }
  }

  close() {
    clearTimeout(this.timer);
  }
}
