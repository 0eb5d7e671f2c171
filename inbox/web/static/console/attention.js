// What draws an agent back: the unread total in the tab title, and (once enabled, off by
// default) a desktop notification and a short beep for a customer's new message in Mine or
// Unassigned. The only thing kept in localStorage is that on/off preference.

import { h } from "./dom.js";

const PREF = "inbox.notifications";
const BASE_TITLE = "Inbox";

export class Attention {
  constructor(ctx, { isOpen, open }) {
    this.ctx = ctx;
    this.isOpen = isOpen;
    this.open = open;
    this.unread = new Map(); // conversation id -> unread count
    this.known = new Map(); // conversation id -> {assignee_id, name}
    this.enabled = readPref() === "on";
    this.audio = null;
    this.button = h("button", { type: "button", class: "ghost notify", onclick: () => this.toggle() });
    this.render();
    const note = (event) => this.note(event.data);
    this.offs = [
      ctx.live.on("conversation.created", note),
      ctx.live.on("conversation.updated", note),
      ctx.live.on("message.received", (event) => this.arrived(event.data)),
      ctx.live.on("resync", () => this.seed()),
    ];
  }

  /** The unread conversations as they are now, whatever view the list shows. */
  async seed() {
    try {
      const page = await this.ctx.api("GET", "/api/conversations", { query: { view: "all", unread: true, limit: 200 } });
      this.unread.clear();
      for (const conv of page.data) this.note(conv);
    } catch {
      // The title catches up with the events that come.
    }
    this.updateTitle();
  }

  note(conv) {
    this.known.set(conv.id, { assignee_id: conv.assignee_id ?? null, name: conv.contact?.name || "A customer" });
    if (conv.unread_count > 0) this.unread.set(conv.id, conv.unread_count);
    else this.unread.delete(conv.id);
    this.updateTitle();
  }

  updateTitle() {
    let total = 0;
    for (const n of this.unread.values()) total += n;
    document.title = total > 0 ? `(${total}) ${BASE_TITLE}` : BASE_TITLE;
  }

  arrived(message) {
    if (!this.enabled || message.direction !== "inbound" || message.private) return;
    const conv = this.known.get(message.conversation_id);
    const me = this.ctx.store.myId;
    const mineOrUnassigned = !conv || conv.assignee_id === null || conv.assignee_id === me;
    if (!mineOrUnassigned) return;
    if (document.visibilityState === "visible" && this.isOpen(message.conversation_id)) return;
    this.beep();
    if (typeof Notification !== "undefined" && Notification.permission === "granted") {
      const text = message.content || (message.attachments?.length ? "Sent an attachment" : "New message");
      const n = new Notification(conv?.name || "New message", { body: text.slice(0, 140), tag: `conversation-${message.conversation_id}` });
      n.onclick = () => {
        window.focus();
        this.open(message.conversation_id);
        n.close();
      };
    }
  }

  async toggle() {
    this.enabled = !this.enabled;
    writePref(this.enabled ? "on" : "off");
    if (this.enabled) {
      // Created inside the click: browsers let audio start only from a user's gesture.
      this.audioContext();
      if (typeof Notification !== "undefined" && Notification.permission === "default") {
        try {
          await Notification.requestPermission();
        } catch {
          // Older permission API or blocked: sound still works.
        }
      }
    }
    this.render();
  }

  render() {
    const blocked = typeof Notification === "undefined" || Notification.permission === "denied";
    this.button.textContent = this.enabled ? "Notifications on" : "Enable notifications";
    this.button.setAttribute("aria-pressed", String(this.enabled));
    this.button.title = this.enabled
      ? blocked
        ? "Desktop notifications are blocked by the browser: a sound plays instead. Click to turn off."
        : "A notification and a sound for new messages in Mine and Unassigned. Click to turn off."
      : "Get a notification and a sound for new messages in Mine and Unassigned";
  }

  audioContext() {
    const Context = globalThis.AudioContext || globalThis.webkitAudioContext;
    if (!this.audio && Context) this.audio = new Context();
    return this.audio;
  }

  /** A soft two-tone chime: no audio file to ship. */
  beep() {
    const audio = this.audioContext();
    if (!audio || audio.state === "suspended") return;
    const now = audio.currentTime;
    for (const [offset, freq] of [[0, 880], [0.12, 1320]]) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.08, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.18);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + offset);
      osc.stop(now + offset + 0.2);
    }
  }

  close() {
    for (const off of this.offs) off();
    this.audio?.close?.();
    document.title = BASE_TITLE;
  }
}

function readPref() {
  try {
    return localStorage.getItem(PREF);
  } catch {
    return null;
  }
}

function writePref(value) {
  try {
    localStorage.setItem(PREF, value);
  } catch {
    // Private mode: the choice lasts for this page only.
  }
}
