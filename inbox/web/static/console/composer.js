// The composer: Enter sends, Shift+Enter breaks the line, "/" opens canned responses.
// Each composed message has one Idempotency-Key for its whole life, so a double click, a
// retry after a network error or a second tab never sends it twice.

import { h } from "./dom.js";
import { CannedPicker, cannedSource, fillPlaceholders, slashQuery } from "./canned.js";
import { myId } from "./messages.js";
import { attachControls } from "./attachments.js";
import { TemplateMode } from "./templates.js";

// At most one `typing` frame per this many ms; others show it for a little longer.
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const VIEWING_SHOWN_MS = 45_000;

export class Composer {
  constructor(ctx, conversationId, { log, conversation, contact }) {
    this.ctx = ctx;
    this.conversationId = conversationId;
    this.log = log;
    this.conversation = conversation;
    this.contact = contact;
    this.lastTyping = 0;
    this.typists = new Map(); // user id -> timer
    this.viewers = new Map(); // user id -> timer
    this.canned = cannedSource(ctx);
    // An admin's change shows in a list already open, not only at the next key.
    this.offCanned = ctx.store?.on?.("canned", () => this.refreshCanned());

    const uid = `reply-${conversationId}`;
    this.textarea = h("textarea", {
      id: uid,
      rows: "3",
      // The API's own limit: longer is refused, so it cannot be typed.
      maxlength: "4096",
      placeholder: "Type a reply… (/ for canned responses)",
      "aria-autocomplete": "list",
      "aria-expanded": "false",
      onkeydown: (e) => this.keydown(e),
      oninput: () => this.input(),
      onblur: () => setTimeout(() => this.picker.hide(), 150),
    });
    this.picker = new CannedPicker(this.textarea, (c) => this.insertCanned(c));
    this.note = h("input", { type: "checkbox", id: `${uid}-note`, onchange: () => this.noteChanged() });
    this.send = h("button", { type: "submit", class: "primary" }, "Send");
    this.error = h("p", { class: "composer-error", role: "alert" });
    this.typingEl = h("p", { class: "typing", "aria-live": "polite" });
    this.templates = new TemplateMode(this);
    this.el = h(
      "form",
      { class: "composer", onsubmit: (e) => this.submit(e) },
      this.typingEl,
      this.picker.el,
      this.templates.el,
      h("label", { for: uid, class: "visually-hidden" }, "Reply"),
      this.textarea,
      h(
        "div",
        { class: "composer-bar" },
        h("label", { class: "toggle" }, this.note, "Private note"),
        ...attachControls(this),
        this.error,
        this.send,
      ),
    );
  }

  setConversation(conversation) {
    this.current = conversation;
    this.templates.update(conversation);
  }

  focus() {
    this.textarea.focus();
  }

  noteChanged() {
    this.el.classList.toggle("is-note", this.note.checked);
    // A note is never refused: the text box comes back for it.
    this.templates.update(this.current);
    this.textarea.placeholder = this.note.checked
      ? "A private note: only your team sees it"
      : "Type a reply… (/ for canned responses)";
  }

  keydown(event) {
    if (this.picker.key(event)) {
      event.preventDefault();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.el.requestSubmit();
    }
  }

  async input() {
    const now = Date.now();
    if (now - this.lastTyping > TYPING_EVERY_MS && this.textarea.value.trim()) {
      this.lastTyping = now;
      this.ctx.live.send({ type: "typing", conversation_id: this.conversationId });
    }
    const slash = slashQuery(this.textarea.value, this.textarea.selectionStart);
    if (!slash) {
      this.picker.hide();
      return;
    }
    this.slash = slash;
    this.picker.show(await this.canned.list(), slash.query);
  }

  async refreshCanned() {
    if (this.picker.open && this.slash) this.picker.show(await this.canned.list(), this.slash.query);
  }

  insertCanned(canned) {
    const conversation = this.conversation() || {};
    const contact = { ...(conversation.contact || {}), ...(this.contact() || {}) };
    const me = this.ctx.store?.me;
    const agent = { name: me?.user?.name ?? me?.name ?? "" };
    const text = fillPlaceholders(canned.content, { contact, agent });
    const value = this.textarea.value;
    const caret = this.textarea.selectionStart;
    const start = this.slash ? this.slash.start : caret;
    this.textarea.value = value.slice(0, start) + text + value.slice(caret);
    const at = start + text.length;
    this.textarea.setSelectionRange(at, at);
    this.picker.hide();
    this.textarea.focus();
  }

  async submit(event) {
    event.preventDefault();
    if (this.templates.active) return this.templates.submit();
    const content = this.textarea.value.trim();
    if (!content) return;
    this.error.textContent = "";
    const body = { content, private: this.note.checked };
    const key = crypto.randomUUID();
    const temp = {
      id: `tmp-${key}`,
      conversation_id: this.conversationId,
      direction: "outbound",
      sender_user_id: myId(this.ctx),
      content,
      content_type: "text",
      attachments: [],
      private: body.private,
      status: body.private ? "sent" : "queued",
      ordered_at: new Date().toISOString(),
    };
    // Cleared at once: a second click finds nothing to send.
    this.textarea.value = "";
    this.picker.hide();
    temp.resend = () => this.post(temp, body, key);
    this.log.addTemp(temp);
    await this.post(temp, body, key);
  }

  async post(temp, body, key) {
    this.log.updateTemp(temp.id, { status: temp.private ? "sent" : "queued", error: null, unsent: false });
    try {
      const message = await this.ctx.api("POST", `/api/conversations/${this.conversationId}/messages`, {
        body,
        idempotencyKey: key,
      });
      this.log.confirmTemp(temp.id, message);
    } catch (err) {
      // A network error or a server fault may be retried with the same key; a refusal
      // (4xx) says why and is not retried as it is.
      const retryable = err.status === 0 || err.status >= 500;
      this.log.updateTemp(temp.id, {
        status: "failed",
        unsent: true,
        error: retryable ? `Not sent: ${err.message}` : err.message,
        retry: retryable,
      });
      if (!retryable) {
        this.error.textContent = err.message;
        // Refused as it is: the words come back to be changed, not retyped.
        if (!this.textarea.value) this.textarea.value = body.content;
      }
    }
  }

  /** Another agent has this conversation open (a `viewing` event). */
  viewing(userId) {
    if (userId === myId(this.ctx) || userId === null) return;
    const known = this.viewers.has(userId);
    clearTimeout(this.viewers.get(userId));
    this.viewers.set(
      userId,
      setTimeout(() => {
        this.viewers.delete(userId);
        this.renderTyping();
      }, VIEWING_SHOWN_MS),
    );
    if (!known) {
      // A newcomer does not know we are here yet: say it once more.
      this.ctx.live.send({ type: "viewing", conversation_id: this.conversationId });
      this.renderTyping();
    }
  }

  /** Another agent's `typing` frame for this conversation. */
  typing(userId) {
    if (userId === myId(this.ctx)) return;
    clearTimeout(this.typists.get(userId));
    this.typists.set(
      userId,
      setTimeout(() => this.typingStopped(userId), TYPING_SHOWN_MS),
    );
    this.renderTyping();
  }

  typingStopped(userId) {
    if (userId === null) {
      for (const timer of this.typists.values()) clearTimeout(timer);
      this.typists.clear();
    } else {
      clearTimeout(this.typists.get(userId));
      this.typists.delete(userId);
    }
    this.renderTyping();
  }

  renderTyping() {
    const team = this.ctx.store?.team;
    const name = (id) => team?.get?.(id)?.name || "Someone";
    const typing = [...this.typists.keys()].map(name);
    const viewing = [...this.viewers.keys()].filter((id) => !this.typists.has(id)).map(name);
    const parts = [];
    if (typing.length) parts.push(`${typing.join(" and ")} ${typing.length > 1 ? "are" : "is"} typing…`);
    if (viewing.length) parts.push(`${viewing.join(" and ")} ${viewing.length > 1 ? "are" : "is"} also viewing`);
    this.typingEl.textContent = parts.join(" · ");
  }

  close() {
    this.typingStopped(null);
    for (const timer of this.viewers.values()) clearTimeout(timer);
    this.viewers.clear();
    this.canned.close();
    this.offCanned?.();
    this.templates.close();
  }
}
