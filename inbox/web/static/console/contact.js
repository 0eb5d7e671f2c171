// The contact beside the conversation: who they are, where they reached us, their lead
// (status and value, editable), their other conversations, and the team's notes.

import { h } from "./dom.js";
import { NewConversation } from "./new_conversation.js";

const LEAD_STATUSES = ["new", "contacted", "qualified", "converted", "lost"];
const CHANNEL_NAMES = { whatsapp: "WhatsApp", instagram: "Instagram", sms: "SMS", generic: "Other" };

export class ContactPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.contact = null;
    this.lead = null;
    this.conversationId = null;
    this.body = h("div", { class: "contact-body" }, h("p", { class: "muted" }, "Loading contact…"));
    this.el = h("aside", { class: "contact-panel", "aria-label": "Contact" }, this.body);
  }

  async load(conversation) {
    this.conversationId = conversation.id;
    const contactId = conversation.contact_id;
    try {
      const [contact, leads, others] = await Promise.all([
        this.ctx.api("GET", `/api/contacts/${contactId}`),
        this.ctx.api("GET", "/api/leads", { query: { contact_id: contactId, limit: 1 } }),
        this.ctx.api("GET", "/api/conversations", { query: { contact_id: contactId, view: "all", limit: 20 } }),
      ]);
      this.contact = contact;
      this.lead = leads.data[0] || null;
      this.others = others.data;
      this.render();
    } catch (err) {
      this.body.replaceChildren(h("p", { class: "muted" }, `The contact could not be loaded: ${err.message}`));
    }
  }

  changed(contact) {
    if (this.contact && contact.id === this.contact.id) {
      this.contact = { ...this.contact, ...contact };
      this.render();
    }
  }

  leadChanged(lead) {
    if (this.contact && lead.contact_id === this.contact.id) {
      this.lead = lead;
      this.render();
    }
  }

  render() {
    const c = this.contact;
    const fields = [
      ["Phone", c.phone],
      ["Email", c.email],
      ["Company", c.company],
    ].filter(([, value]) => value);
    const channels = [...new Set((c.identities || []).filter((i) => !i.replaced_at).map((i) => CHANNEL_NAMES[i.kind] || i.kind))];
    // The lead and notes controls are built once and only their values follow changes:
    // a colleague's edit must not take the focus or a half-typed note away.
    this.leadEl ??= this.leadSection();
    this.notesEl ??= this.notesSection();
    this.fillLead();
    this.fillNotes();
    this.headEl ??= h("div", { class: "contact-head" });
    this.othersEl ??= h("div");
    this.starter ??= new NewConversation(this.ctx, { contact: () => this.contact, conversations: () => this.others });
    // Placed once: moving a focused control out of the page and back drops its focus.
    if (!this.body.contains(this.leadEl)) this.body.replaceChildren(this.headEl, this.starter.el, this.leadEl, this.othersEl, this.notesEl);
    this.headEl.replaceChildren(
      h("h3", {}, c.name || c.phone || c.email || "Unknown contact"),
      h("dl", { class: "facts" }, fields.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value)])),
      channels.length ? h("p", { class: "channels" }, `Reached us on ${channels.join(", ")}`) : null,
    );
    this.othersEl.replaceChildren(this.othersSection());
  }

  leadSection() {
    this.leadNone = h("p", { class: "muted" }, "No lead for this contact.");
    this.leadStatus = h(
      "select",
      { "aria-label": "Lead status", onchange: () => this.saveLead({ status: this.leadStatus.value }) },
      LEAD_STATUSES.map((s) => h("option", { value: s }, s[0].toUpperCase() + s.slice(1))),
    );
    this.leadValue = h("input", {
      type: "number",
      min: "0",
      step: "0.01",
      "aria-label": "Lead value",
      placeholder: "Value",
      onchange: () => this.saveLead({ value: this.leadValue.value === "" ? null : Number(this.leadValue.value) }),
    });
    this.leadRow = h("div", { class: "lead-row" }, this.leadStatus, this.leadValue);
    this.leadError = h("p", { class: "action-error", role: "alert" });
    return h("section", { "aria-label": "Lead" }, h("h4", {}, "Lead"), this.leadNone, this.leadRow, this.leadError);
  }

  fillLead() {
    const lead = this.lead;
    this.leadNone.hidden = Boolean(lead);
    this.leadRow.hidden = !lead;
    if (!lead) return;
    this.leadStatus.value = lead.status;
    if (document.activeElement !== this.leadValue) this.leadValue.value = lead.value ?? "";
  }

  async saveLead(changes) {
    this.leadError.textContent = "";
    try {
      this.lead = await this.ctx.api("PATCH", `/api/leads/${this.lead.id}`, { body: changes });
    } catch (err) {
      this.leadError.textContent = err.message;
    }
    this.fillLead();
  }

  othersSection() {
    const others = (this.others || []).filter((o) => o.id !== this.conversationId);
    return h(
      "section",
      { "aria-label": "Other conversations" },
      h("h4", {}, "Other conversations"),
      others.length
        ? h(
            "ul",
            { class: "others" },
            others.map((o) =>
              h("li", {}, h("a", { href: `#/conversations/${o.id}` }, `${o.channel?.name || o.channel?.kind || "Channel"} · ${o.status}`)),
            ),
          )
        : h("p", { class: "muted" }, "None."),
    );
  }

  notesSection() {
    this.notes = h("textarea", { rows: "3", "aria-label": "Contact notes", oninput: () => (this.notesDirty = true) });
    this.saved = h("span", { class: "muted", role: "status" });
    const save = async (event) => {
      event.preventDefault();
      this.saved.textContent = "";
      try {
        const body = { notes: this.notes.value || null };
        this.contact = { ...this.contact, ...(await this.ctx.api("PATCH", `/api/contacts/${this.contact.id}`, { body })) };
        this.notesDirty = false;
        this.saved.textContent = "Saved";
      } catch (err) {
        this.saved.textContent = err.message;
      }
    };
    return h("form", { class: "notes", onsubmit: save }, h("h4", {}, "Notes"), this.notes, h("div", {}, h("button", { type: "submit" }, "Save notes"), this.saved));
  }

  fillNotes() {
    if (!this.notesDirty && document.activeElement !== this.notes) this.notes.value = this.contact.notes || "";
  }
}
