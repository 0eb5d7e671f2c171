// The conversation list: views, filters and search over GET /api/conversations, paged by
// cursor as it scrolls, kept live from the socket. Rows are keyed by conversation id: an
// event touches its own row and moves it, never re-rendering the list, and the DOM work of
// a burst of events is done once, after the batch. Only the rows in sight (and a margin)
// are in the document, so ten thousand loaded conversations scroll like fifty.

import { h } from "./dom.js";
import { fullTime, initials, relativeTime } from "./format.js";

const PAGE = 50;
const OVERSCAN = 12; // rows kept in the document above and below the visible ones
const DEFAULT_ROW_HEIGHT = 78;
const SEARCH_DEBOUNCE_MS = 300;
const VIEWS = [
  ["mine", "Mine"],
  ["unassigned", "Unassigned"],
  ["all", "All"],
];
const STATUSES = [
  ["open", "Open"],
  ["pending", "Pending"],
  ["snoozed", "Snoozed"],
  ["closed", "Closed"],
  ["", "Any status"],
];

/** Newest activity first, conversations without messages last, then newest id: the server's ORDER. */
export function compareConversations(a, b) {
  const at = a.last_message_at ? Date.parse(a.last_message_at) : null;
  const bt = b.last_message_at ? Date.parse(b.last_message_at) : null;
  if (at !== bt) {
    if (at === null) return 1;
    if (bt === null) return -1;
    return bt - at;
  }
  return b.id - a.id;
}

export class ConversationList {
  constructor(ctx, { onOpen, filters }) {
    this.ctx = ctx;
    this.onOpen = onOpen;
    this.filters = { view: "all", status: "open", channel_id: "", label: "", q: "", ...filters };
    this.rows = new Map(); // id -> {conv, el, time}
    this.order = []; // ids, in compareConversations order
    this.openId = null;
    this.hasMore = false;
    this.cursor = null;
    this.boundary = null; // the last conversation the server has given: rows past it wait for paging
    this.total = 0;
    this.generation = 0;
    this.loading = false;
    this.dirty = new Set(); // rows whose content changed since they were last drawn
    this.mounted = new Set(); // ids whose rows are in the document
    this.rowHeight = 0;
    this.renderQueued = false;
    this.windowQueued = false;
    this.offs = [];
    this.build();
    this.subscribe();
    this.clock = setInterval(() => this.tick(), 60_000);
  }

  // -- the DOM ---------------------------------------------------------------------

  build() {
    this.viewButtons = VIEWS.map(([value, label]) =>
      h("button", { type: "button", class: "view", "data-view": value, onclick: () => this.setFilter("view", value) }, label),
    );
    this.statusSelect = h(
      "select",
      { "aria-label": "Status", onchange: (e) => this.setFilter("status", e.target.value) },
      STATUSES.map(([value, label]) => h("option", { value }, label)),
    );
    this.channelSelect = h("select", { "aria-label": "Channel", onchange: (e) => this.setFilter("channel_id", e.target.value) });
    this.labelInput = h("input", {
      type: "text",
      "aria-label": "Label",
      placeholder: "Label",
      autocomplete: "off",
      onkeydown: (e) => e.key === "Enter" && this.setFilter("label", e.target.value.trim()),
      onchange: (e) => this.setFilter("label", e.target.value.trim()),
    });
    let searchTimer = null;
    this.searchInput = h("input", {
      type: "search",
      "aria-label": "Search",
      placeholder: "Search name, phone, email, messages",
      autocomplete: "off",
      oninput: (e) => {
        clearTimeout(searchTimer);
        searchTimer = setTimeout(() => this.setFilter("q", e.target.value.trim()), SEARCH_DEBOUNCE_MS);
      },
    });
    this.summary = h("p", { class: "list-summary", "aria-live": "polite" });
    this.listEl = h("ul", {
      class: "rows",
      role: "listbox",
      "aria-label": "Conversations",
      onkeydown: (e) => this.onKey(e),
      onclick: (e) => this.onClick(e),
    });
    this.sentinel = h("div", { class: "sentinel", "aria-hidden": "true" });
    this.scroller = h("div", { class: "rows-scroll", onscroll: () => this.queueWindow() }, this.listEl, this.sentinel);
    this.el = h(
      "section",
      { class: "list-panel", "aria-label": "Conversation list" },
      h("div", { class: "views", role: "group", "aria-label": "View" }, this.viewButtons),
      h("div", { class: "search" }, this.searchInput),
      h("div", { class: "filters" }, this.statusSelect, this.channelSelect, this.labelInput),
      this.summary,
      this.scroller,
    );
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) this.loadMore();
    }, { root: this.scroller, rootMargin: "600px 0px" });
    this.observer.observe(this.sentinel);
    this.resizer = new ResizeObserver(() => {
      this.rowHeight = 0; // the font or the width changed: measure again
      this.queueWindow();
    });
    this.resizer.observe(this.scroller);
    this.renderChannels();
    this.offs.push(this.ctx.store.on("channels", () => this.renderChannels()));
    this.offs.push(this.ctx.store.on("team", () => this.rows.forEach((_, id) => this.dirty.add(id)) || this.queueRender()));
    this.syncControls();
  }

  syncControls() {
    for (const button of this.viewButtons) {
      button.setAttribute("aria-pressed", String(button.dataset.view === this.filters.view));
    }
    this.statusSelect.value = this.filters.status;
    this.channelSelect.value = String(this.filters.channel_id || "");
    if (document.activeElement !== this.labelInput) this.labelInput.value = this.filters.label;
  }

  renderChannels() {
    const channels = [...this.ctx.store.channels.values()].sort((a, b) => a.name.localeCompare(b.name));
    this.channelSelect.replaceChildren(
      h("option", { value: "" }, "All channels"),
      ...channels.map((c) => h("option", { value: String(c.id) }, c.name)),
    );
    this.channelSelect.value = String(this.filters.channel_id || "");
  }

  renderRow(record) {
    const c = record.conv;
    const name = c.contact?.name || "Unknown contact";
    const assignee = c.assignee_id ? this.ctx.store.team.get(c.assignee_id)?.name || "Assigned" : "Unassigned";
    const channel = c.channel?.name || c.channel?.kind || "";
    const unread = c.unread_count > 0;
    record.time = h("time", { class: "row-time", datetime: c.last_message_at || "", title: fullTime(c.last_message_at) }, relativeTime(c.last_message_at));
    const el = record.el;
    el.className = `row${unread ? " unread" : ""}${c.id === this.openId ? " current" : ""}`;
    el.setAttribute("aria-selected", String(c.id === this.openId));
    el.replaceChildren(
      h("span", { class: "avatar", "aria-hidden": "true", "data-kind": c.channel?.kind || "" }, initials(name)),
      h(
        "span",
        { class: "row-main" },
        h("span", { class: "row-top" }, h("span", { class: "row-name" }, name), record.time),
        h("span", { class: "row-preview" }, c.last_message?.preview || "No messages yet"),
        h(
          "span",
          { class: "row-meta" },
          h("span", { class: "chip channel" }, channel),
          c.status !== "open" ? h("span", { class: `chip status-${c.status}` }, c.status) : null,
          h("span", { class: `row-assignee${c.assignee_id ? "" : " none"}` }, assignee),
          unread ? h("span", { class: "badge" }, String(c.unread_count), h("span", { class: "sr-only" }, " unread")) : null,
        ),
      ),
    );
  }

  // -- loading ----------------------------------------------------------------------

  query() {
    const f = this.filters;
    return { view: f.view, status: f.status, channel_id: f.channel_id, label: f.label, q: f.q, limit: PAGE };
  }

  setFilter(name, value) {
    if (this.filters[name] === value) return;
    this.filters = { ...this.filters, [name]: value };
    this.syncControls();
    this.reload();
  }

  /** From the first page again: a filter changed, or events were missed. */
  async reload() {
    const generation = ++this.generation;
    this.loading = true;
    this.summary.textContent = "Loading…";
    // What the socket says while the page is on its way may be newer than the page.
    const arrived = (this.arrivedDuringLoad = new Map());
    try {
      const page = await this.ctx.api("GET", "/api/conversations", { query: this.query() });
      if (generation !== this.generation) return;
      this.rows.clear();
      this.order = [];
      this.dirty.clear();
      this.mounted.clear();
      this.listEl.replaceChildren();
      this.scroller.scrollTop = 0;
      this.accept(page);
      const served = new Map(page.data.map((conv) => [conv.id, conv]));
      for (const conv of arrived.values()) {
        const fromPage = served.get(conv.id);
        if (!fromPage || Date.parse(conv.updated_at) >= Date.parse(fromPage.updated_at)) this.place(conv);
      }
      this.renderNow();
    } catch (err) {
      if (generation === this.generation) this.summary.textContent = `Could not load conversations: ${err.message}`;
    } finally {
      if (generation === this.generation) {
        this.loading = false;
        this.arrivedDuringLoad = null;
      }
    }
    this.fillViewport();
  }

  async loadMore() {
    if (this.loading || !this.hasMore || !this.cursor) return;
    const generation = this.generation;
    this.loading = true;
    try {
      const page = await this.ctx.api("GET", "/api/conversations", { query: { ...this.query(), cursor: this.cursor } });
      if (generation !== this.generation) return;
      this.accept(page);
    } catch (err) {
      if (generation === this.generation) this.summary.textContent = `Could not load more: ${err.message}`;
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    this.fillViewport();
  }

  accept(page) {
    this.hasMore = page.pagination.has_more;
    this.cursor = page.pagination.next_cursor;
    this.total = page.pagination.total;
    if (page.data.length) this.boundary = page.data[page.data.length - 1];
    for (const conv of page.data) {
      this.ctx.store.noteChannel(conv.channel);
      const known = this.rows.get(conv.id);
      // The socket may already have brought a newer state than this page.
      if (known && Date.parse(known.conv.updated_at) > Date.parse(conv.updated_at)) continue;
      this.place(conv, { fromServer: true });
    }
    this.renderNow();
    this.ctx.onConversations?.(page.data);
  }

  /** The sentinel is still in sight after a page: one observer callback will not come again. */
  fillViewport() {
    requestAnimationFrame(() => {
      if (!this.hasMore || this.loading) return;
      const box = this.scroller.getBoundingClientRect();
      if (this.sentinel.getBoundingClientRect().top < box.bottom + 600) this.loadMore();
    });
  }

  // -- the model --------------------------------------------------------------------

  matches(conv) {
    const f = this.filters;
    const me = this.ctx.store.myId;
    if (f.view === "mine" && conv.assignee_id !== me) return false;
    if (f.view === "unassigned" && conv.assignee_id !== null && conv.assignee_id !== undefined) return false;
    if (f.status && conv.status !== f.status) return false;
    if (f.channel_id && conv.channel_id !== Number(f.channel_id)) return false;
    if (f.label && !(conv.labels || []).includes(f.label)) return false;
    if (f.q && !this.rows.has(conv.id)) {
      // The server also searches message text; what is in sight here is name and preview.
      const q = f.q.toLowerCase();
      const text = `${conv.contact?.name || ""} ${conv.last_message?.preview || ""}`.toLowerCase();
      if (!text.includes(q)) return false;
    }
    return true;
  }

  /** After the last conversation the server gave while more pages remain: paging brings it. */
  pastBoundary(conv) {
    return this.hasMore && this.boundary && conv.id !== this.boundary.id && compareConversations(conv, this.boundary) > 0;
  }

  place(conv, { fromServer = false } = {}) {
    const record = this.rows.get(conv.id);
    if (!fromServer && (!this.matches(conv) || this.pastBoundary(conv))) {
      if (record) this.remove(conv.id);
      return;
    }
    if (record) {
      const index = this.indexOf(record.conv);
      this.order.splice(index, 1);
      record.conv = conv;
    } else {
      this.rows.set(conv.id, { conv, el: h("li", { role: "option", id: `conversation-${conv.id}`, tabindex: "-1", "data-id": String(conv.id) }), time: null });
      if (!fromServer) this.total += 1;
    }
    this.order.splice(this.insertionIndex(conv), 0, conv.id);
    this.dirty.add(conv.id);
  }

  remove(id) {
    const record = this.rows.get(id);
    if (!record) return;
    this.order.splice(this.indexOf(record.conv), 1);
    this.rows.delete(id);
    this.dirty.delete(id);
    this.mounted.delete(id);
    this.total = Math.max(0, this.total - 1);
    const focused = record.el.contains(document.activeElement);
    record.el.remove();
    if (focused) this.focusRow(this.order[0]);
    this.queueRender();
  }

  /** Binary search on the sorted ids. */
  insertionIndex(conv) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareConversations(this.rows.get(this.order[mid]).conv, conv) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  indexOf(conv) {
    const at = this.insertionIndex(conv);
    if (this.order[at] === conv.id) return at;
    return this.order.indexOf(conv.id); // the sort key changed under it: look it up
  }

  // -- live -------------------------------------------------------------------------

  subscribe() {
    const live = this.ctx.live;
    const conversation = (event) => {
      this.arrivedDuringLoad?.set(event.data.id, event.data);
      this.ctx.store.noteChannel(event.data.channel);
      this.place(event.data);
      this.queueRender();
    };
    this.offs.push(live.on("conversation.created", conversation));
    this.offs.push(live.on("conversation.updated", conversation));
    const message = (event) => {
      // The conversation.updated that follows carries everything; this moves the row now.
      const m = event.data;
      const record = this.rows.get(m.conversation_id);
      if (!record || m.private) return;
      const at = m.created_at;
      if (record.conv.last_message_at && Date.parse(record.conv.last_message_at) >= Date.parse(at)) return;
      const preview = m.content || (m.attachments?.length ? "Attachment" : record.conv.last_message?.preview);
      this.place({ ...record.conv, last_message_at: at, last_message: { preview, at } });
      this.queueRender();
    };
    this.offs.push(live.on("message.received", message));
    this.offs.push(live.on("message.sent", message));
    this.offs.push(live.on("resync", () => this.reload()));
  }

  queueRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    // After the rest of the event batch: one pass of DOM work for all of it.
    queueMicrotask(() => this.renderNow());
  }

  renderNow() {
    this.renderQueued = false;
    this.renderWindow();
    this.updateTabStop();
    const shown = this.order.length;
    this.summary.textContent = shown ? `${this.total} conversation${this.total === 1 ? "" : "s"}` : "";
    this.listEl.toggleAttribute("data-empty", shown === 0);
    if (!shown && !this.loading) this.summary.textContent = this.filters.q ? "Nothing matches this search" : "No conversations here";
  }

  queueWindow() {
    if (this.windowQueued) return;
    this.windowQueued = true;
    requestAnimationFrame(() => {
      this.windowQueued = false;
      this.renderWindow();
      this.updateTabStop();
    });
  }

  /** The rows in sight, in order, with the space of the others above and below them. */
  renderWindow() {
    const count = this.order.length;
    const height = this.rowHeight || DEFAULT_ROW_HEIGHT;
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.min(count, Math.floor(top / height)) - OVERSCAN);
    const last = Math.min(count, Math.ceil((top + (this.scroller.clientHeight || 800)) / height) + OVERSCAN);
    const wanted = this.order.slice(first, last);
    const keep = new Set(wanted);
    const focused = document.activeElement;
    let lostFocus = false;
    for (const id of this.mounted) {
      if (keep.has(id)) continue;
      const record = this.rows.get(id);
      if (record) {
        lostFocus ||= record.el.contains(focused);
        record.el.remove();
      }
      this.mounted.delete(id);
    }
    let previous = null;
    wanted.forEach((id, offset) => {
      const record = this.rows.get(id);
      if (this.dirty.has(id) || !record.time) {
        this.renderRow(record);
        this.dirty.delete(id);
      } else if (!this.mounted.has(id)) {
        record.time.textContent = relativeTime(record.conv.last_message_at);
      }
      record.el.setAttribute("aria-posinset", String(first + offset + 1));
      record.el.setAttribute("aria-setsize", String(Math.max(this.total, count)));
      const expected = previous ? previous.nextSibling : this.listEl.firstChild;
      if (expected !== record.el) this.listEl.insertBefore(record.el, expected);
      this.mounted.add(id);
      previous = record.el;
    });
    this.listEl.style.paddingTop = `${first * height}px`;
    this.listEl.style.paddingBottom = `${(count - last) * height}px`;
    if (wanted.length && !this.rowHeight) {
      const measured = this.rows.get(wanted[0]).el.offsetHeight;
      if (measured > 0 && measured !== height) {
        this.rowHeight = measured;
        this.queueWindow(); // the spacers assumed another height
      } else if (measured > 0) this.rowHeight = measured;
    }
    if (focused && focused !== document.activeElement && this.listEl.contains(focused)) focused.focus({ preventScroll: true });
    // The focused row scrolled out of the document: the list keeps the keyboard.
    if (lostFocus) this.listEl.focus({ preventScroll: true });
  }

  tick() {
    const now = Date.now();
    for (const id of this.mounted) {
      const record = this.rows.get(id);
      if (record?.time) record.time.textContent = relativeTime(record.conv.last_message_at, now);
    }
  }

  // -- selection and keyboard ----------------------------------------------------------

  setOpen(id) {
    const previous = this.openId;
    this.openId = id === null ? null : Number(id);
    for (const key of [previous, this.openId]) {
      const record = this.rows.get(key);
      if (record) {
        record.el.classList.toggle("current", key === this.openId);
        record.el.setAttribute("aria-selected", String(key === this.openId));
      }
    }
    this.updateTabStop();
  }

  updateTabStop() {
    // One tab stop among the rows in the document; none in sight: the list itself.
    const open = this.mounted.has(this.openId) ? this.rows.get(this.openId).el : null;
    const stop = open || this.listEl.querySelector('[tabindex="0"]') || this.listEl.firstElementChild;
    for (const el of this.listEl.querySelectorAll('[tabindex="0"]')) if (el !== stop) el.tabIndex = -1;
    if (stop) stop.tabIndex = 0;
    this.listEl.tabIndex = stop ? -1 : 0;
  }

  focusRow(id) {
    const record = this.rows.get(id);
    if (!record) return;
    this.focusedId = id;
    if (!this.mounted.has(id)) {
      // Out of the document: scroll it into sight first, then draw that window now.
      const height = this.rowHeight || DEFAULT_ROW_HEIGHT;
      const index = this.order.indexOf(id);
      this.scroller.scrollTop = Math.max(0, index * height - this.scroller.clientHeight / 2);
      this.renderWindow();
    }
    for (const el of this.listEl.querySelectorAll('[tabindex="0"]')) el.tabIndex = -1;
    record.el.tabIndex = 0;
    record.el.focus();
  }

  /** Focus the open row, or the first one. */
  focus() {
    this.focusRow(this.rows.has(this.openId) ? this.openId : this.order[0]);
  }

  onClick(e) {
    const row = e.target.closest("li[data-id]");
    if (row) this.onOpen(Number(row.dataset.id));
  }

  onKey(e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const row = e.target.closest("li[data-id]");
    // The list itself has focus when the focused row scrolled away: go on from that row.
    const from = row ? Number(row.dataset.id) : this.rows.has(this.focusedId) ? this.focusedId : null;
    const index = from === null ? -1 : this.order.indexOf(from);
    let target = null;
    if (e.key === "ArrowDown" || e.key === "j") target = this.order[Math.min(index + 1, this.order.length - 1)];
    else if (e.key === "ArrowUp" || e.key === "k") target = this.order[Math.max(index - 1, 0)];
    else if (e.key === "Home") target = this.order[0];
    else if (e.key === "End") target = this.order[this.order.length - 1];
    else if ((e.key === "Enter" || e.key === " ") && row) {
      e.preventDefault();
      this.onOpen(Number(row.dataset.id));
      return;
    } else return;
    e.preventDefault();
    if (target !== undefined) this.focusRow(target);
  }

  close() {
    clearInterval(this.clock);
    this.observer.disconnect();
    this.resizer.disconnect();
    for (const off of this.offs) off();
  }
}
