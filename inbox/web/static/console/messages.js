// The message log of one conversation: the latest page first, older pages as the agent
// scrolls up, live messages and statuses as they come. Rows are keyed by message id and
// built once; a change re-renders only the rows it touches, at most once per frame.

import { h } from "./dom.js";
import { mediaEl } from "./attachments.js";

const PAGE = 50;
// How close to the top (px) the agent scrolls before the older page is asked for.
const LOAD_OLDER_AT = 120;
const STATUS_LABEL = {
  queued: "Sending…",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Failed",
  received: "",
};

/** The signed-in user's id, whether the store keeps /api/auth/me's answer or the user. */
export function myId(ctx) {
  const me = ctx.store?.me;
  return me?.user?.id ?? me?.id ?? null;
}

export class MessageLog {
  constructor(ctx, conversationId) {
    this.ctx = ctx;
    this.conversationId = conversationId;
    this.rows = new Map(); // id -> {message, el}
    this.order = []; // ids in conversation order
    this.hasMore = false;
    this.loadingOlder = false;
    this.frame = 0;
    this.contactName = "Customer";
    this.list = h("ol", {
      class: "log",
      role: "log",
      "aria-label": "Messages",
      "aria-live": "polite",
      tabindex: "0",
    });
    this.older = h("p", { class: "log-older", hidden: true }, "Loading older messages…");
    this.el = h("div", { class: "log-scroll", onscroll: () => this.scrolled() }, this.older, this.list);
  }

  async load() {
    try {
      const page = await this.ctx.api("GET", `/api/conversations/${this.conversationId}/messages`, {
        query: { limit: PAGE },
      });
      // Merged, not replaced: a resync keeps what is unsent (and its Retry) and what the
      // socket brought while the page was on its way.
      const first = this.rows.size === 0;
      for (const message of page.data) this.put(message);
      if (first) this.hasMore = page.pagination.has_more;
      this.renderNow();
      this.el.scrollTop = this.el.scrollHeight;
    } catch (err) {
      this.list.replaceChildren(h("li", { class: "log-error" }, `Messages could not be loaded: ${err.message}`));
    }
  }

  async scrolled() {
    if (this.el.scrollTop > LOAD_OLDER_AT || !this.hasMore || this.loadingOlder) return;
    const first = this.order.find((id) => typeof id === "number");
    if (first === undefined) return;
    this.loadingOlder = true;
    this.older.hidden = false;
    try {
      const page = await this.ctx.api("GET", `/api/conversations/${this.conversationId}/messages`, {
        query: { limit: PAGE, before: first },
      });
      const height = this.el.scrollHeight;
      for (const message of page.data) this.put(message);
      this.hasMore = page.pagination.has_more;
      this.renderNow();
      // Keep the message the agent was reading where it was.
      this.el.scrollTop += this.el.scrollHeight - height;
    } catch {
      // The next scroll asks again.
    } finally {
      this.loadingOlder = false;
      this.older.hidden = true;
    }
  }

  /** A message from the server (REST or an event): added, or its row replaced. */
  upsert(message) {
    if (!this.rows.has(message.id)) {
      // Older than what is loaded: the page that holds it brings it, and it must not
      // become the cursor that older pages are asked from.
      const oldest = this.order.find((id) => typeof id === "number");
      if (this.hasMore && oldest !== undefined && before(message, this.rows.get(oldest).message)) return;
      if (message.direction === "outbound") this.dropTemp(message);
    }
    this.put(message);
    this.schedule();
  }

  /** A `message.status` event: the row's status and error, and the platform id a send
   * gives it (reactions and replies name messages by it). */
  status(data) {
    const row = this.rows.get(data.id);
    if (!row) return;
    Object.assign(row.message, {
      status: data.status,
      error: data.error,
      error_code: data.error_code,
    });
    if (data.external_id) row.message.external_id = data.external_id;
    row.el = null;
    this.schedule();
  }

  /** The composer's message before the server has answered: shown at once as queued. */
  addTemp(temp) {
    this.put(temp);
    this.schedule();
  }

  updateTemp(tempId, changes) {
    const row = this.rows.get(tempId);
    if (!row) return;
    Object.assign(row.message, changes);
    row.el = null;
    this.schedule();
  }

  /** The server's message replaces the composer's. The answer is the message as it was
   * stored: when its events came first they are newer, and it must not undo them. */
  confirmTemp(tempId, message) {
    this.remove(tempId);
    // Put, not upsert: another copy of the same words still on its way keeps its row.
    if (!this.rows.has(message.id)) {
      this.put(message);
      this.schedule();
    }
  }

  /** The stored twin of a message still shown as the composer's: the event can beat the
   * POST's answer, or be the only word of a send whose answer was lost; the agent must
   * never see the message twice. A refused one (4xx) was never stored: it stays. */
  dropTemp(message) {
    for (const [id, row] of this.rows) {
      const temp = row.message;
      if (
        typeof id === "string" &&
        (!temp.unsent || temp.retry !== false) &&
        temp.content === message.content &&
        temp.private === message.private &&
        message.sender_user_id === myId(this.ctx)
      ) {
        this.remove(id);
        return;
      }
    }
  }

  remove(id) {
    if (!this.rows.delete(id)) return;
    this.order = this.order.filter((x) => x !== id);
    this.schedule();
  }

  put(message) {
    const known = this.rows.get(message.id);
    if (known) {
      known.message = message;
      known.el = null;
      return;
    }
    this.rows.set(message.id, { message, el: null });
    let at = this.order.length;
    // New messages belong at the end nearly always: look from there.
    while (at > 0 && before(message, this.rows.get(this.order[at - 1]).message)) at -= 1;
    this.order.splice(at, 0, message.id);
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 80;
      this.renderNow();
      if (atBottom) this.el.scrollTop = this.el.scrollHeight;
    });
  }

  renderNow() {
    const nodes = [];
    let day = null;
    for (const id of this.order) {
      const row = this.rows.get(id);
      const when = new Date(row.message.ordered_at || row.message.created_at || Date.now());
      const label = dayLabel(when);
      if (label !== day) {
        day = label;
        nodes.push(h("li", { class: "day", role: "separator" }, h("span", {}, label)));
      }
      if (!row.el) row.el = this.messageEl(row.message);
      nodes.push(row.el);
    }
    this.list.replaceChildren(...nodes);
  }

  /** A message of this log by its platform id, for reactions and replies that name it. */
  byExternalId(externalId) {
    if (!externalId) return null;
    for (const row of this.rows.values()) if (row.message.external_id === externalId) return row.message;
    return null;
  }

  quote(externalId) {
    const target = this.byExternalId(externalId);
    const text = target?.content || "";
    return text ? ` to “${text.length > 60 ? `${text.slice(0, 60)}…` : text}”` : "";
  }

  messageEl(m) {
    const reaction = (m.attachments || []).find((a) => a.type === "reaction");
    if (m.content_type === "reaction" || (m.content_type === "deleted" && reaction)) {
      const text =
        m.content_type === "deleted" || !reaction?.emoji
          ? `${this.who(m)} removed a reaction`
          : `${this.who(m)} reacted ${reaction.emoji}${this.quote(reaction.target_id)}`;
      return h("li", { class: `msg reaction ${m.direction}`, "data-id": m.id }, text);
    }
    const kind = m.private ? "note" : m.direction === "inbound" ? "in" : "out";
    const attrs = { class: `msg ${kind}`, "data-id": m.id };
    if (m.direction === "outbound") attrs["data-status"] = m.status;
    const body = [];
    if (m.private) body.push(h("span", { class: "note-label" }, "Private note"));
    if (m.reply_to) {
      const quoted = this.quote(m.reply_to);
      if (quoted) body.push(h("p", { class: "reply-to" }, `Replying${quoted}`));
    }
    if (m.content_type === "deleted") {
      body.push(h("p", { class: "deleted" }, "This message was deleted"));
    } else if (m.content && !(m.attachments || []).some((a) => a.filename === m.content)) {
      // A document without a caption has its file name for text: the link says it already.
      body.push(h("p", { class: "text" }, m.content));
    }
    for (const a of m.attachments || []) body.push(a.media ? mediaEl(this.ctx, a) : attachmentEl(a));
    const meta = [h("time", { datetime: m.ordered_at }, clock(new Date(m.ordered_at || Date.now())))];
    if ((m.platform_data?.edits || []).length) meta.push(h("span", { class: "edited" }, "edited"));
    if (m.direction === "outbound" && !m.private) {
      meta.push(h("span", { class: "status" }, STATUS_LABEL[m.status] ?? m.status));
    }
    const el = h(
      "li",
      attrs,
      h("div", { class: "bubble" }, h("span", { class: "author" }, this.who(m)), body),
      h("div", { class: "meta" }, meta),
    );
    if (m.status === "failed") {
      const retry = h("button", { type: "button", class: "retry", onclick: () => this.retry(m, retry) }, "Retry");
      el.append(h("div", { class: "failure", role: "alert" }, h("span", {}, m.error || "The platform refused this message"), m.retry === false ? null : retry));
    }
    return el;
  }

  who(m) {
    if (m.direction === "inbound") return this.contactName;
    if (m.sender_user_id == null) return "Sent from the platform";
    return this.ctx.store?.team?.get?.(m.sender_user_id)?.name || "Agent";
  }

  async retry(m, button) {
    button.disabled = true;
    try {
      if (typeof m.id === "string") {
        await m.resend();
      } else {
        const queued = await this.ctx.api("POST", `/api/messages/${m.id}/retry`);
        // Only over the failure: a status event for the new attempt may have come first.
        if (this.rows.get(m.id)?.message.status === "failed") this.upsert(queued);
      }
    } catch (err) {
      button.disabled = false;
      button.title = err.message;
    }
  }

  close() {
    cancelAnimationFrame(this.frame);
  }
}

/** Whether `a` comes before `b` in the conversation. Times are compared as instants, not
 * strings: the server writes "…05Z" and "…05.120Z" for the same second. */
function before(a, b) {
  const ta = instant(a);
  const tb = instant(b);
  if (ta !== tb) return ta < tb;
  // Messages the server has not stored yet come after every stored one.
  const stored = (m) => typeof m.id === "number";
  if (stored(a) !== stored(b)) return stored(a);
  return stored(a) ? a.id < b.id : String(a.id) < String(b.id);
}

function instant(m) {
  const at = Date.parse(m.ordered_at || m.created_at || "");
  return Number.isNaN(at) ? Infinity : at;
}

const SAFE_URL = /^(https?:\/\/|\/(?!\/))/i;

function attachmentEl(a) {
  const name = a.filename || a.caption || a.type || "attachment";
  const url = typeof a.url === "string" && SAFE_URL.test(a.url) ? a.url : null;
  const size = a.size ? ` (${fileSize(a.size)})` : "";
  if (url && (a.type === "image" || a.type === "sticker" || String(a.mime_type || "").startsWith("image/"))) {
    return h(
      "a",
      { class: "thumb", href: url, target: "_blank", rel: "noopener noreferrer" },
      h("img", { src: url, alt: a.caption || "Image", loading: "lazy" }),
    );
  }
  if (url) {
    return h("a", { class: "file", href: url, target: "_blank", rel: "noopener noreferrer", download: "" }, `📎 ${name}${size}`);
  }
  if (a.type === "location") {
    return h("p", { class: "file" }, `📍 ${a.name || ""} ${a.latitude ?? ""}, ${a.longitude ?? ""}`);
  }
  return h("span", { class: "file pending" }, `📎 ${name}${size}`);
}

export function fileSize(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let n = Number(bytes);
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u += 1;
  }
  return `${u ? n.toFixed(1) : n} ${units[u]}`;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today);
  yesterday.setDate(today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short", year: "numeric" });
}
