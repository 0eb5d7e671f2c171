// The console: sign-in, the layout (header, list, pane, connection status), routing by
// location.hash (#/conversations/<id>), presence, and the session's lifetime. The session
// is an HttpOnly cookie: nothing here ever holds a credential.

import { api as rawApi } from "./api.js";
import { h } from "./dom.js";
import { Attention } from "./attention.js";
import { ConversationList } from "./list.js";
import { consoleLive } from "./live.js";
import { Store } from "./store.js";

const root = document.getElementById("app");
const CONNECTION_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", stopped: "Offline" };
const FIRST_LIVE_WAIT_MS = 3000;
let console_ = null;

async function boot() {
  root.replaceChildren(h("p", { class: "booting" }, "Loading…"));
  try {
    start(await rawApi("GET", "/api/auth/me"));
  } catch (err) {
    if (err.status === 401 || err.status === 403) return showSignIn();
    root.replaceChildren(
      h(
        "div",
        { class: "signin" },
        h("p", { role: "alert" }, `The inbox cannot be reached: ${err.message}`),
        h("button", { type: "button", class: "primary", onclick: boot }, "Try again"),
      ),
    );
  }
}

// -- sign-in ----------------------------------------------------------------------

function showSignIn(notice = "") {
  const email = h("input", { id: "signin-email", type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "signin-password", type: "password", name: "password", autocomplete: "current-password", required: true });
  const error = h("p", { class: "signin-error", role: "alert" }, notice);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "signin-card", "aria-labelledby": "signin-title", novalidate: true },
    h("div", { class: "brand", "aria-hidden": "true" }, "✉"),
    h("h1", { id: "signin-title" }, "Sign in to your inbox"),
    h("label", { for: email.id }, "Email"),
    email,
    h("label", { for: password.id }, "Password"),
    password,
    error,
    button,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!email.value.trim() || !password.value) {
      error.textContent = "Enter your email and password";
      return;
    }
    button.disabled = true;
    error.textContent = "";
    try {
      const session = await rawApi("POST", "/api/auth/session", { body: { email: email.value.trim(), password: password.value } });
      password.value = "";
      start(session);
    } catch (err) {
      error.textContent = err.status === 401 ? "Wrong email or password" : err.message;
      button.disabled = false;
      password.select();
    }
  });
  document.title = "Sign in · Inbox";
  root.replaceChildren(h("main", { class: "signin" }, form));
  email.focus();
}

// -- the signed-in console ------------------------------------------------------------

function start(me) {
  stop();
  const session = { closed: false, cleanups: [] };
  console_ = session;
  const api = async (method, path, options) => {
    try {
      return await rawApi(method, path, options);
    } catch (err) {
      if (err.status === 401 && !session.closed) signedOut("Your session has ended. Sign in again.");
      throw err;
    }
  };
  const store = new Store(api);
  store.me = { user: me.user, organization: me.organization, role: me.role };
  const live = consoleLive(api);
  const ctx = { api, live, store };
  session.ctx = ctx;

  const connection = h("span", { class: "connection", role: "status", "aria-label": "Connection" });
  session.cleanups.push(
    live.onState((state) => {
      connection.textContent = CONNECTION_TEXT[state] || state;
      connection.dataset.state = state;
    }),
  );
  session.cleanups.push(live.on("signedout", () => signedOut("Your session has ended. Sign in again.")));

  const paneEl = h("div", { class: "pane-slot" });
  const back = h("button", { type: "button", class: "ghost back", onclick: () => navigate(null) }, "← All conversations");
  const paneArea = h("section", { class: "pane-area", "aria-label": "Conversation" }, h("div", { class: "pane-bar" }, back), paneEl);
  const list = new ConversationList(ctx, { onOpen: (id) => navigate(id) });
  session.list = list;
  const attention = new Attention(ctx, { isOpen: (id) => session.paneId === Number(id), open: (id) => navigate(id) });
  ctx.onConversations = (convs) => convs.forEach((c) => attention.known.has(c.id) || attention.note(c));
  session.cleanups.push(() => list.close(), () => attention.close());

  const presence = presenceControls(ctx, session);
  const layout = h(
    "div",
    { class: "console" },
    h(
      "header",
      { class: "topbar" },
      h("div", { class: "org" }, h("span", { class: "brand", "aria-hidden": "true" }, "✉"), h("h1", {}, me.organization?.name || "Inbox")),
      h("div", { class: "topbar-right" }, connection, h("a", { href: "/dashboard", class: "ghost nav-link" }, "Dashboard"), presence.team, attention.button, presence.status, h("span", { class: "me", title: me.user.email }, me.user.name), h("button", { type: "button", class: "ghost", onclick: signOut }, "Sign out")),
    ),
    h("main", { class: "workspace" }, list.el, paneArea),
  );
  session.layout = layout;
  session.paneEl = paneEl;
  root.replaceChildren(layout);
  showEmptyPane(session);

  const onHash = () => route(session);
  window.addEventListener("hashchange", onHash);
  const onKey = (e) => globalKey(e, session);
  document.addEventListener("keydown", onKey);
  session.cleanups.push(() => window.removeEventListener("hashchange", onHash), () => document.removeEventListener("keydown", onKey));

  session.cleanups.push(
    live.on("agent.status", (event) => store.setPresence(event.data.user_id, event.data.status)),
    live.on("resync", () => store.loadTeam().catch(() => {})),
    live.on("canned_response.created", (e) => store.cannedChanged(e.type, e.data)),
    live.on("canned_response.updated", (e) => store.cannedChanged(e.type, e.data)),
    live.on("canned_response.deleted", (e) => store.cannedChanged(e.type, e.data)),
  );
  live.start();
  store.loadTeam().catch(() => {});
  store.loadChannels();
  store.loadCanned();
  // The list is read once the socket is live, so nothing happens between the two unseen.
  firstLive(live).then(() => {
    if (session.closed) return;
    list.reload();
    attention.seed();
  });
  route(session);
}

function firstLive(live) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, FIRST_LIVE_WAIT_MS);
    let off = null;
    function done() {
      clearTimeout(timer);
      queueMicrotask(() => off?.());
      resolve();
    }
    off = live.onState((state) => state === "live" && done());
  });
}

function presenceControls(ctx, session) {
  const store = ctx.store;
  let chosen = "online";
  const status = h(
    "select",
    { "aria-label": "My status", class: "my-status" },
    h("option", { value: "online" }, "Online"),
    h("option", { value: "away" }, "Away"),
  );
  status.addEventListener("change", async () => {
    chosen = status.value;
    status.dataset.status = chosen;
    try {
      await ctx.api("POST", "/api/presence", { body: { status: chosen } });
    } catch {
      // Said again when the socket is live.
    }
  });
  status.dataset.status = chosen;
  // A new connection counts as online: an agent who said away stays away.
  session.cleanups.push(
    ctx.live.onState((state) => {
      if (state === "live" && chosen === "away") ctx.api("POST", "/api/presence", { body: { status: "away" } }).catch(() => {});
    }),
  );

  const count = h("span", { class: "team-count" });
  const members = h("ul", { class: "team-list" });
  const popover = h("div", { class: "popover", role: "dialog", "aria-label": "Team", hidden: true }, h("h2", {}, "Team"), members);
  const button = h("button", { type: "button", class: "ghost team-button", "aria-expanded": "false", "aria-haspopup": "dialog" }, h("span", { class: "dot online", "aria-hidden": "true" }), count);
  const toggle = (open) => {
    popover.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) popover.querySelector("li")?.focus();
  };
  button.addEventListener("click", () => toggle(popover.hidden));
  session.closePopover = () => {
    if (popover.hidden) return false;
    toggle(false);
    button.focus();
    return true;
  };
  const outside = (e) => !popover.hidden && !popover.contains(e.target) && !button.contains(e.target) && toggle(false);
  document.addEventListener("pointerdown", outside);
  session.cleanups.push(() => document.removeEventListener("pointerdown", outside));

  const render = () => {
    const all = [...store.team.values()];
    const rank = { online: 0, away: 1, offline: 2 };
    all.sort((a, b) => rank[a.presence] - rank[b.presence] || a.name.localeCompare(b.name));
    const online = all.filter((m) => m.presence === "online").length;
    count.textContent = `${online} online`;
    button.setAttribute("aria-label", `Team: ${online} online`);
    members.replaceChildren(
      ...all.map((m) =>
        h(
          "li",
          { tabindex: "-1" },
          h("span", { class: `dot ${m.presence}`, "aria-hidden": "true" }),
          h("span", { class: "team-name" }, m.name, m.id === store.myId ? " (you)" : ""),
          h("span", { class: "team-presence" }, m.presence),
        ),
      ),
    );
    const mine = store.team.get(store.myId);
    if (mine && mine.presence !== "offline" && document.activeElement !== status) {
      status.value = mine.presence;
      status.dataset.status = mine.presence;
      chosen = mine.presence;
    }
  };
  session.cleanups.push(store.on("team", render));
  render();
  return { status, team: h("div", { class: "team" }, button, popover) };
}

// -- routing and the pane -----------------------------------------------------------------

function navigate(id) {
  const hash = id === null ? "#/" : `#/conversations/${id}`;
  if (location.hash !== hash) location.hash = hash;
}

async function route(session) {
  const match = /^#\/conversations\/(\d+)$/.exec(location.hash);
  const id = match ? Number(match[1]) : null;
  if (id === session.paneId) return;
  session.pane?.close();
  session.pane = null;
  session.paneId = id;
  session.list.setOpen(id);
  session.layout.classList.toggle("has-pane", id !== null);
  if (id === null) return showEmptyPane(session);
  let openConversation;
  try {
    ({ openConversation } = await import("./conversation.js"));
  } catch (err) {
    if (session.paneId === id) session.paneEl.replaceChildren(h("div", { class: "pane-empty" }, h("p", {}, `Conversation ${id}`), h("p", { class: "muted" }, "The conversation view could not be loaded.")));
    return;
  }
  if (session.closed || session.paneId !== id) return;
  session.pane = openConversation(session.paneEl, session.ctx, id);
}

function showEmptyPane(session) {
  session.paneEl.replaceChildren(
    h(
      "div",
      { class: "pane-empty" },
      h("p", { class: "pane-empty-title" }, "No conversation open"),
      h("p", { class: "muted" }, "Pick one from the list. ↑ ↓ or j k move, Enter opens, Esc closes."),
    ),
  );
}

function globalKey(e, session) {
  if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
  const target = e.target;
  const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  if (e.key === "Escape") {
    if (session.closePopover?.()) return e.preventDefault();
    if (!typing && session.paneId !== null) {
      e.preventDefault();
      navigate(null);
      session.list.focus();
    }
    return;
  }
  if (typing) return;
  if ((e.key === "j" || e.key === "k" || e.key === "ArrowDown" || e.key === "ArrowUp") && !session.list.el.contains(target) && !session.paneEl.contains(target)) {
    e.preventDefault();
    session.list.focus();
  }
}

// -- leaving ---------------------------------------------------------------------------

async function signOut() {
  const session = console_;
  if (!session) return;
  session.closed = true;
  // Stopped first: the socket's own 4401 on sign-out is no news.
  session.ctx.live.stop();
  try {
    await rawApi("DELETE", "/api/auth/session");
  } catch {
    // Already ended on the server (or unreachable): the page forgets it either way.
  }
  stop();
  showSignIn();
}

function signedOut(notice) {
  stop();
  showSignIn(notice);
}

function stop() {
  const session = console_;
  console_ = null;
  if (!session) return;
  session.closed = true;
  session.ctx?.live.stop();
  session.pane?.close();
  for (const cleanup of session.cleanups.splice(0)) {
    try {
      cleanup();
    } catch (err) {
      console.warn("cleanup failed", err);
    }
  }
  document.title = "Inbox";
}

boot();
