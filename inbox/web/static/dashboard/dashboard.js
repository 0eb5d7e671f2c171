// The manager's dashboard at /dashboard, and the wall screen at /dashboard?kiosk=1.
// Signed in like the console (the HttpOnly session cookie). A wall screen takes viewers
// only: a viewer user's session (the cookie, so the screen survives a reload or a power
// cut), or a viewer API key typed once and kept in this page's memory only: never in
// storage, so closing the tab forgets it. Figures move with metrics.update over the
// console's socket client; nothing polls.

import { api as rawApi } from "/console/api.js";
import { h } from "/console/dom.js";
import { consoleLive } from "/console/live.js";
import { clock, todayIn } from "./format.js";
import { Report, Trends } from "./reports.js";
import { Tiles } from "./tiles.js";

const root = document.getElementById("app");
const KIOSK = new URLSearchParams(location.search).get("kiosk") === "1";
const CONNECTION_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", stopped: "Offline" };
// Today's overview and charts are read again at most this often while figures move.
const REFRESH_MS = 5000;
// A wall screen on a viewer's session asks something this often, so that a quiet night
// does not let the session reach its idle limit.
const KEEP_ALIVE_MS = 30 * 60 * 1000;
const VIEWERS_ONLY = "A wall screen can be used by anyone passing: it takes a viewer only";
let current = null;

document.body.classList.toggle("kiosk", KIOSK);

async function boot() {
  stop();
  root.replaceChildren(h("p", { class: "booting" }, "Loading…"));
  try {
    const me = await rawApi("GET", "/api/auth/me");
    if (KIOSK && me.role !== "viewer") return askForKey();
    start(me, rawApi);
  } catch (err) {
    if (err.status === 401 || err.status === 403) return KIOSK ? askForKey() : signInForm();
    root.replaceChildren(h("div", { class: "signin" }, h("p", { role: "alert" }, `The dashboard cannot be reached: ${err.message}`), h("button", { type: "button", class: "primary", onclick: boot }, "Try again")));
  }
}

// -- signing in ---------------------------------------------------------------------------

function card(title, fields, onSubmit, notice) {
  const error = h("p", { class: "signin-error", role: "alert" }, notice);
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h("form", { class: "signin-card", "aria-labelledby": "signin-title", novalidate: true }, h("div", { class: "brand", "aria-hidden": "true" }, "✉"), h("h1", { id: "signin-title" }, title), fields, error, button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    error.textContent = "";
    try {
      await onSubmit();
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
    }
  });
  root.replaceChildren(h("main", { class: "signin" }, form));
  form.querySelector("input")?.focus();
}

function signInForm(notice = "") {
  const email = h("input", { id: "signin-email", type: "email", autocomplete: "username", required: true });
  const password = h("input", { id: "signin-password", type: "password", autocomplete: "current-password", required: true });
  document.title = KIOSK ? "Wall screen · Dashboard" : "Sign in · Dashboard";
  const fields = [h("label", { for: email.id }, "Email"), email, h("label", { for: password.id }, "Password"), password];
  if (KIOSK) fields.push(h("p", { class: "muted hint" }, "A viewer account: the screen stays signed in across reloads. ", h("button", { type: "button", class: "link", onclick: () => askForKey() }, "Use a viewer API key instead")));
  card(KIOSK ? "Wall screen" : "Sign in to the dashboard", fields, async () => {
    if (!email.value.trim() || !password.value) throw new Error("Enter your email and password");
    try {
      await rawApi("POST", "/api/auth/session", { body: { email: email.value.trim(), password: password.value } });
    } catch (err) {
      throw new Error(err.status === 401 ? "Wrong email or password" : err.message);
    }
    password.value = "";
    const me = await rawApi("GET", "/api/auth/me");
    if (KIOSK && me.role !== "viewer") {
      // Not left signed in on a screen anyone can walk up to.
      await rawApi("DELETE", "/api/auth/session").catch(() => {});
      throw new Error(`${VIEWERS_ONLY}; this account has the role “${me.role}”`);
    }
    start(me, rawApi);
  }, notice);
}

function askForKey(notice = "") {
  const key = h("input", { id: "kiosk-key", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  document.title = "Wall screen · Dashboard";
  const hint = h("p", { class: "muted hint" }, "Asked once: the key stays in this page's memory only, so a reload asks again. ", h("button", { type: "button", class: "link", onclick: () => signInForm() }, "Sign in with a viewer account instead"));
  card("Wall screen", [h("label", { for: key.id }, "Viewer API key"), key, hint], async () => {
    const secret = key.value.trim();
    if (!secret) throw new Error("Enter a viewer API key");
    const keyApi = (method, path, options = {}) => rawApi(method, path, { ...options, headers: { Authorization: `Bearer ${secret}` } });
    let me;
    try {
      me = await keyApi("GET", "/api/auth/me");
    } catch (err) {
      throw new Error(err.status === 401 ? "This key is not valid (deleted or expired?)" : err.message);
    }
    // A screen on a wall can be read and used by anyone passing: it gets no key that can write.
    if (me.role !== "viewer") throw new Error(`${VIEWERS_ONLY}; this key has the role “${me.role}”`);
    key.value = "";
    start(me, keyApi);
  }, notice);
}

// -- the signed-in dashboard ---------------------------------------------------------

function start(me, baseApi) {
  stop();
  const session = { closed: false, cleanups: [], refreshTimer: null, lastRefresh: 0 };
  current = session;
  const onKey = baseApi !== rawApi;
  const ended = () => (onKey ? askForKey("The key stopped working. Enter a viewer API key again.") : signInForm("Your session has ended. Sign in again."));
  const api = async (method, path, options) => {
    try {
      return await baseApi(method, path, options);
    } catch (err) {
      if (err.status === 401 && !session.closed) {
        stop();
        ended();
      }
      throw err;
    }
  };
  const zone = me.organization?.timezone || "UTC";
  const live = consoleLive(api);
  session.live = live;
  const tiles = new Tiles();
  const trends = new Trends(api);
  const report = new Report(api, { controls: !KIOSK, download: KIOSK ? null : download });
  report.zone = zone;
  session.cleanups.push(() => trends.close(), () => report.close());

  const connection = h("span", { class: "connection", role: "status", "aria-label": "Connection" });
  const time = h("span", { class: "clock", "aria-hidden": "true" });
  const tick = () => (time.textContent = clock(new Date(), zone));
  tick();
  const ticker = setInterval(tick, 1000);
  session.cleanups.push(() => clearInterval(ticker));

  const right = KIOSK
    ? [time, connection]
    : [connection, h("a", { href: "/", class: "nav-link" }, "Console"), h("span", { class: "me", title: me.user?.email || "" }, me.user?.name || ""), h("button", { type: "button", class: "ghost", onclick: signOut }, "Sign out")];
  root.replaceChildren(
    h(
      "div",
      { class: "dashboard" },
      h("header", { class: "topbar" }, h("div", { class: "org" }, h("span", { class: "brand", "aria-hidden": "true" }, "✉"), h("h1", {}, me.organization?.name || "Inbox", h("span", { class: "muted" }, " · Dashboard"))), h("div", { class: "topbar-right" }, right)),
      h("main", { class: "board" }, h("section", { class: "now", "aria-labelledby": "now-title" }, h("h2", { id: "now-title", class: "sr-only" }, "Right now"), tiles.el), trends.el, report.el),
    ),
  );
  document.title = KIOSK ? `${me.organization?.name || "Inbox"} · Wall screen` : "Dashboard";

  const seed = () =>
    api("GET", "/api/analytics/live")
      .then((figures) => !session.closed && tiles.live(figures))
      .catch(() => {});
  const refreshToday = async () => {
    session.lastRefresh = Date.now();
    const overview = api("GET", "/api/analytics/overview").then((answer) => !session.closed && tiles.today(answer.data));
    // The chosen range is read again only when it holds today: the past does not move.
    const chosen = report.range;
    const withToday = !chosen || chosen.to >= todayIn(zone) ? report.load() : null;
    await Promise.allSettled([overview, trends.load(zone), withToday]);
  };
  const soon = () => {
    if (session.refreshTimer || session.closed) return;
    const wait = Math.max(0, session.lastRefresh + REFRESH_MS - Date.now());
    session.refreshTimer = setTimeout(() => {
      session.refreshTimer = null;
      if (!session.closed) refreshToday();
    }, wait);
  };
  session.cleanups.push(() => clearTimeout(session.refreshTimer));

  session.cleanups.push(
    live.onState((state) => {
      connection.textContent = CONNECTION_TEXT[state] || state;
      connection.dataset.state = state;
      // Back after a drop (a server restart among others): what was missed is read afresh.
      if (state === "live") {
        seed();
        soon();
      }
    }),
    live.on("metrics.update", (event) => {
      tiles.live(event.data);
      soon();
    }),
    live.on("resync", () => {
      seed();
      soon();
    }),
    live.on("signedout", () => {
      if (session.closed) return;
      stop();
      ended();
    }),
  );
  if (KIOSK && !onKey) {
    const keepAlive = setInterval(() => api("GET", "/api/auth/me").catch(() => {}), KEEP_ALIVE_MS);
    session.cleanups.push(() => clearInterval(keepAlive));
  }
  live.start();
  seed();
  refreshToday();
}

/** A CSV link: the cookie counts only on the page's own requests (they carry its
 * header), so the file is fetched here and handed to the browser to save. */
async function download(event, href) {
  event.preventDefault();
  const link = event.currentTarget;
  try {
    const response = await fetch(href, { headers: { "X-Inbox-Client": "console", Accept: "text/csv" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "")?.[1] || "report.csv";
    const url = URL.createObjectURL(await response.blob());
    const save = h("a", { href: url, download: name, hidden: true });
    document.body.append(save);
    save.click();
    save.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (err) {
    link.title = `The download failed: ${err.message}`;
  }
}

// -- leaving ------------------------------------------------------------------------------

async function signOut() {
  const session = current;
  if (!session) return;
  session.closed = true;
  session.live.stop();
  try {
    await rawApi("DELETE", "/api/auth/session");
  } catch {
    // Already ended on the server (or unreachable): the page forgets it either way.
  }
  stop();
  signInForm();
}

function stop() {
  const session = current;
  current = null;
  if (!session) return;
  session.closed = true;
  session.live?.stop();
  for (const cleanup of session.cleanups.splice(0)) {
    try {
      cleanup();
    } catch (err) {
      console.warn("cleanup failed", err);
    }
  }
}

boot();
