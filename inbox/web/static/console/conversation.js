// One open conversation: its header and actions, the message log, the composer and the
// contact panel, kept live from the socket. `openConversation` is the pane's only door.

import { h } from "./dom.js";
import { Actions } from "./actions.js";
import { Composer } from "./composer.js";
import { ContactPanel } from "./contact.js";
import { MessageLog } from "./messages.js";
import { windowText } from "./templates.js";

// Marking read is a write every console hears about: once per burst of arrivals is enough.
const READ_DEBOUNCE_MS = 400;
// "I have it open", repeated; a colleague's console forgets a viewer it stops hearing from.
const VIEWING_EVERY_MS = 20_000;

export function openConversation(container, ctx, conversationId) {
  const id = Number(conversationId);
  const log = new MessageLog(ctx, id);
  const actions = new Actions(ctx, id);
  const contact = new ContactPanel(ctx);
  const composer = new Composer(ctx, id, {
    log,
    conversation: () => current,
    contact: () => contact.contact,
  });
  const title = h("h2", { class: "pane-title", id: `pane-title-${id}` }, "…");
  const subtitle = h("p", { class: "pane-subtitle" });
  const replyWindow = h("p", { class: "reply-window", role: "status" });
  const root = h(
    "section",
    { class: "pane", "aria-labelledby": title.id },
    h("header", { class: "pane-head" }, h("div", { class: "pane-who" }, title, subtitle, replyWindow), actions.el),
    h("div", { class: "pane-body" }, h("div", { class: "pane-main" }, log.el, composer.el), contact.el),
  );
  container.replaceChildren(root);

  let current = null;
  let closed = false;
  let readTimer = null;
  const unsubscribe = [];

  function show(conversation) {
    current = conversation;
    title.textContent = conversation.contact?.name || "Unknown contact";
    log.contactName = conversation.contact?.name || "Customer";
    const channel = conversation.channel?.name || conversation.channel?.kind || "";
    subtitle.textContent = channel;
    showWindow();
    actions.render(conversation);
    composer.setConversation(conversation);
  }

  function showWindow() {
    const text = windowText(current);
    replyWindow.textContent = text || "";
    replyWindow.classList.toggle("closed", text === "Reply window closed");
  }
  // The hours left count down while the conversation stays open.
  const windowTimer = setInterval(showWindow, 60_000);

  function markRead(wait = READ_DEBOUNCE_MS) {
    clearTimeout(readTimer);
    readTimer = setTimeout(async () => {
      if (closed || document.visibilityState !== "visible") return;
      if (current && current.unread_count === 0) return;
      try {
        show(await ctx.api("POST", `/api/conversations/${id}/read`));
      } catch {
        // Not read this time: the next arrival or opening tries again.
      }
    }, wait);
  }

  async function load() {
    try {
      const conversation = await ctx.api("GET", `/api/conversations/${id}`);
      if (closed) return;
      show(conversation);
      contact.load(conversation);
      markRead(0);
    } catch (err) {
      title.textContent = err.status === 404 ? "Conversation not found" : "Could not load";
      subtitle.textContent = err.message;
    }
  }

  const mine = (data) => data && Number(data.conversation_id) === id;
  const on = (type, fn) => unsubscribe.push(ctx.live.on(type, fn));
  on("conversation.updated", (event) => {
    if (Number(event.data.id) !== id) return;
    show(event.data);
    // Unread while open (its message may have come before this): read it again.
    if (event.data.unread_count > 0) markRead();
  });
  on("message.received", (event) => {
    if (!mine(event.data)) return;
    log.upsert(event.data);
    markRead();
  });
  on("message.sent", (event) => mine(event.data) && log.upsert(event.data));
  on("message.updated", (event) => mine(event.data) && log.upsert(event.data));
  on("message.deleted", (event) => mine(event.data) && log.upsert(event.data));
  on("message.status", (event) => mine(event.data) && log.status(event.data));
  on("typing", (event) => mine(event.data) && composer.typing(event.data.user_id));
  on("viewing", (event) => mine(event.data) && composer.viewing(event.data.user_id));
  const viewing = () => ctx.live.send({ type: "viewing", conversation_id: id });
  // Sent again on each (re)connection, so colleagues who just arrived learn of it too.
  unsubscribe.push(ctx.live.onState((state) => state === "live" && viewing()));
  const viewingTimer = setInterval(viewing, VIEWING_EVERY_MS);
  on("contact.updated", (event) => contact.changed(event.data));
  on("lead.updated", (event) => contact.leadChanged(event.data));
  on("lead.created", (event) => contact.leadChanged(event.data));
  on("resync", () => {
    load();
    log.load();
  });
  const visible = () => document.visibilityState === "visible" && markRead();
  document.addEventListener("visibilitychange", visible);

  load();
  log.load();

  return {
    id,
    close() {
      closed = true;
      clearTimeout(readTimer);
      clearInterval(viewingTimer);
      clearInterval(windowTimer);
      document.removeEventListener("visibilitychange", visible);
      for (const off of unsubscribe) off();
      composer.close();
      log.close();
      actions.close();
    },
    focusComposer() {
      composer.focus();
    },
  };
}
