// "New conversation" in the contact panel: write to the contact first, on a channel of
// the organization, with text or (on WhatsApp, where a customer who has not written
// takes nothing else) a template. The new conversation opens once it is made.

import { h } from "./dom.js";
import { TemplatePicker } from "./templates.js";

let formIds = 0;

export class NewConversation {
  constructor(ctx, { contact, conversations }) {
    this.ctx = ctx;
    this.contact = contact;
    this.conversations = conversations;
    const id = `new-conversation-${++formIds}`;
    this.toggle = h(
      "button",
      { type: "button", "aria-expanded": "false", "aria-controls": id, onclick: () => this.open(this.form.hidden) },
      "New conversation",
    );
    this.channel = h("select", { id: `${id}-channel`, onchange: () => this.kindChanged() });
    this.kind = h(
      "select",
      { id: `${id}-kind`, onchange: () => this.kindChanged() },
      h("option", { value: "text" }, "Text"),
      h("option", { value: "template" }, "Template"),
    );
    this.text = h("textarea", { id: `${id}-text`, rows: "3", maxlength: "4096" });
    this.textRow = h("div", {}, h("label", { for: this.text.id }, "Message"), this.text);
    this.picker = new TemplatePicker(ctx, { contact, idPrefix: id });
    this.error = h("p", { class: "action-error", role: "alert" });
    this.start = h("button", { type: "submit", class: "primary" }, "Start conversation");
    this.form = h(
      "form",
      { id, class: "new-conversation", "aria-label": "New conversation", hidden: true, onsubmit: (e) => this.submit(e) },
      h("label", { for: this.channel.id }, "Channel"),
      this.channel,
      h("label", { for: this.kind.id }, "Send"),
      this.kind,
      this.textRow,
      this.picker.el,
      this.error,
      this.start,
    );
    this.el = h("section", { class: "new-conversation-section", "aria-label": "Start a conversation" }, this.toggle, this.form);
  }

  async open(show) {
    this.form.hidden = !show;
    this.toggle.setAttribute("aria-expanded", String(show));
    if (!show) return;
    this.error.textContent = "";
    const channels = await this.channels();
    this.channel.replaceChildren(...channels.map((c) => h("option", { value: String(c.id), dataset: { kind: c.kind } }, c.name)));
    if (!channels.length) this.error.textContent = "No channel to write on.";
    this.kindChanged();
    this.channel.focus();
  }

  /** Every active channel for an admin; for others, the channels this contact was met on. */
  async channels() {
    try {
      const page = await this.ctx.api("GET", "/api/channels", { query: { limit: 100 } });
      return page.data.filter((c) => c.is_active);
    } catch {
      const seen = new Map();
      for (const o of this.conversations() || []) if (o.channel) seen.set(o.channel.id, o.channel);
      return [...seen.values()];
    }
  }

  kindChanged() {
    const option = this.channel.selectedOptions[0];
    const whatsapp = option?.dataset.kind === "whatsapp";
    // Templates are WhatsApp's alone.
    this.kind.disabled = !whatsapp;
    if (!whatsapp) this.kind.value = "text";
    const template = this.kind.value === "template";
    this.textRow.hidden = template;
    this.picker.el.hidden = !template;
    if (template) this.picker.load(Number(this.channel.value));
  }

  async submit(event) {
    event.preventDefault();
    if (this.sending) return;
    this.error.textContent = "";
    const message = this.kind.value === "template" ? { template: this.picker.request() } : { content: this.text.value.trim() };
    if (!message.template && !message.content) {
      this.error.textContent = "Write a message or choose a template.";
      return;
    }
    this.key ??= crypto.randomUUID();
    this.sending = true;
    try {
      const started = await this.ctx.api("POST", "/api/conversations", {
        body: { channel_id: Number(this.channel.value), contact_id: this.contact().id, message },
        idempotencyKey: this.key,
      });
      this.key = null;
      this.text.value = "";
      this.open(false);
      location.hash = `#/conversations/${started.conversation.id}`;
    } catch (err) {
      if (err.status > 0 && err.status < 500) this.key = null;
      this.error.textContent = err.message;
    } finally {
      this.sending = false;
    }
  }
}
