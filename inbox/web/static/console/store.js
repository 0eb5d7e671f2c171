// What every part of the console shares: who is signed in, the team with its presence,
// the channels and the canned responses. A tiny emitter tells who cares when they change.

export class Store {
  constructor(api) {
    this.api = api;
    this.me = null; // GET /api/auth/me's answer: {user, organization, role}
    this.team = new Map(); // user id -> {id, name, role, presence}
    this.channels = new Map(); // channel id -> {id, kind, name}
    this.canned = null; // array once loaded; null: not loaded (the pane fetches itself)
    this.listeners = new Map();
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name)?.delete(fn);
  }

  emit(name, value) {
    for (const fn of [...(this.listeners.get(name) || [])]) {
      try {
        fn(value);
      } catch (err) {
        console.warn(`store listener for ${name} failed`, err);
      }
    }
  }

  get myId() {
    return this.me?.user?.id ?? null;
  }

  async loadTeam() {
    const page = await this.api("GET", "/api/team");
    this.team = new Map(page.data.map((member) => [member.id, member]));
    this.emit("team", this.team);
  }

  setPresence(userId, presence) {
    const member = this.team.get(userId);
    if (!member || member.presence === presence) return;
    this.team.set(userId, { ...member, presence });
    this.emit("team", this.team);
  }

  /** Admins list the channels; agents learn them from the conversations they see. */
  async loadChannels() {
    try {
      const page = await this.api("GET", "/api/channels", { query: { limit: 100 } });
      for (const c of page.data) this.channels.set(c.id, { id: c.id, kind: c.kind, name: c.name });
      this.emit("channels", this.channels);
    } catch {
      // Not an admin: noteChannel fills the map as conversations arrive.
    }
  }

  noteChannel(channel) {
    if (!channel || this.channels.has(channel.id)) return;
    this.channels.set(channel.id, { id: channel.id, kind: channel.kind, name: channel.name });
    this.emit("channels", this.channels);
  }

  async loadCanned() {
    try {
      const page = await this.api("GET", "/api/canned-responses", { query: { limit: 200 } });
      this.canned = page.data;
      this.emit("canned", this.canned);
    } catch {
      this.canned = null;
    }
  }

  cannedChanged(type, data) {
    if (!Array.isArray(this.canned)) return;
    const others = this.canned.filter((c) => c.id !== data.id);
    this.canned = type.endsWith(".deleted") ? others : [...others, data];
    this.canned.sort((a, b) => String(a.short_code).localeCompare(String(b.short_code)));
    this.emit("canned", this.canned);
  }
}
