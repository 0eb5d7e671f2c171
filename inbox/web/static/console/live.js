// The realtime client: one WebSocket to /ws, no UI, reusable by any page of the service.
//
//   const live = new LiveClient({ticket: async () => "...", url: (ticket, last) => "wss://..."});
//   live.on("message.received", (event) => ...);  // "*" for every event
//   live.onState((state) => ...);  // "connecting" | "live" | "reconnecting" | "stopped"
//   live.start();
//
// It authenticates with a single-use ticket per connection, resumes after a drop from the
// last event id it saw (kept in memory only), drops any event it has already delivered,
// reconnects with exponential backoff and full jitter, and hands events to listeners in
// batches, once per animation frame. Pseudo-events: "resync" (events were missed: reload
// what is on screen) and "signedout" (the session ended: close code 4401 or a refused ticket).

const CLOSE_UNAUTHORIZED = 4401;

export class LiveClient {
  constructor({
    ticket,
    url,
    pingMs = 25_000,
    pongTimeoutMs = 10_000,
    baseDelayMs = 500,
    maxDelayMs = 10_000,
    resumeAttempts = 3,
    WebSocketImpl = globalThis.WebSocket,
  }) {
    this.ticket = ticket;
    this.url = url;
    this.pingMs = pingMs;
    this.pongTimeoutMs = pongTimeoutMs;
    this.baseDelayMs = baseDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.resumeAttempts = resumeAttempts;
    this.WebSocketImpl = WebSocketImpl;
    this.lastEventId = null;
    this.state = "stopped";
    this.listeners = new Map();
    this.stateListeners = new Set();
    this.queue = [];
    this.flushScheduled = false;
    this.running = false;
    this.socket = null;
    this.attempt = 0;
    this.failedResumes = 0;
    this.everLive = false;
    this.timers = {};
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type)?.delete(fn);
  }

  /** Called at once with the current state, then on every change. */
  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  /** A client frame ({type: "typing", conversation_id}); false when not connected. */
  send(frame) {
    if (!this.socket || this.socket.readyState !== 1 || this.state !== "live") return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.running = false;
    this.clearTimers();
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000);
      } catch {
        // already closed
      }
    }
    this.setState("stopped");
  }

  // -- connection ----------------------------------------------------------------

  async connect() {
    if (!this.running) return;
    this.setState(this.everLive ? "reconnecting" : "connecting");
    let ticket;
    try {
      ticket = await this.ticket();
    } catch (err) {
      if (err && err.status === 401) return this.signedOut();
      return this.retry();
    }
    if (!this.running) return;
    let socket;
    try {
      socket = new this.WebSocketImpl(this.url(ticket, this.lastEventId));
    } catch {
      return this.retry();
    }
    this.socket = socket;
    let ready = false;
    const resuming = this.lastEventId !== null;
    socket.onmessage = (message) => {
      if (this.socket !== socket) return;
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "session.ready") {
        ready = true;
        this.onReady(frame);
        return;
      }
      this.onFrame(frame);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearTimers();
      if (event.code === CLOSE_UNAUTHORIZED) return this.signedOut();
      if (!ready && resuming) {
        // The server refused the handshake more than once with our last id: start afresh
        // and let the page reload what it shows rather than retry the same resume forever.
        this.failedResumes += 1;
        if (this.failedResumes >= this.resumeAttempts) {
          this.lastEventId = null;
          this.failedResumes = 0;
          this.pendingResync = true;
        }
      }
      this.retry();
    };
  }

  onReady(frame) {
    this.attempt = 0;
    this.failedResumes = 0;
    if (this.lastEventId === null && Number.isInteger(frame.last_event_id)) {
      this.lastEventId = frame.last_event_id;
    }
    this.everLive = true;
    this.setState("live");
    if (this.pendingResync) {
      this.pendingResync = false;
      this.enqueue({ type: "resync", data: { reason: "resume failed" } });
    }
    this.schedulePing();
  }

  onFrame(frame) {
    this.markAlive();
    switch (frame.type) {
      case "pong":
        return;
      case "replay.truncated":
        return this.enqueue({ type: "resync", data: { reason: "replay truncated" } });
      case "error":
        if (frame.code === "EVENT_UNREADABLE") {
          this.noteId(frame.event_id);
          return this.enqueue({ type: "resync", data: { reason: "event unreadable" } });
        }
        return this.enqueue({ type: "error", data: frame });
      default:
        break;
    }
    if (Number.isInteger(frame.id)) {
      // Stored events come in id order, replay included: one at or below the last id
      // delivered was delivered already.
      if (this.lastEventId !== null && frame.id <= this.lastEventId) return;
      this.noteId(frame.id);
    }
    this.enqueue(frame);
  }

  noteId(id) {
    if (!Number.isInteger(id)) return;
    if (this.lastEventId === null || id > this.lastEventId) this.lastEventId = id;
  }

  retry() {
    if (!this.running) return;
    this.setState(this.everLive ? "reconnecting" : "connecting");
    const ceiling = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** this.attempt);
    this.attempt += 1;
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.connect(), Math.random() * ceiling);
  }

  signedOut() {
    this.stop();
    this.lastEventId = null;
    this.everLive = false;
    this.enqueue({ type: "signedout", data: {} });
  }

  schedulePing() {
    clearTimeout(this.timers.ping);
    this.timers.ping = setTimeout(() => {
      if (!this.send({ type: "ping" })) return;
      // No answer at all: the connection is dead without having said so. Its closing
      // handshake would wait as long, so it is dropped and a new one tried at once.
      this.timers.pong = setTimeout(() => this.abandon(), this.pongTimeoutMs);
      this.schedulePing();
    }, this.pingMs);
  }

  abandon() {
    const socket = this.socket;
    if (!socket) return;
    this.socket = null;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close(4000);
    } catch {
      // already closed
    }
    this.clearTimers();
    this.retry();
  }

  markAlive() {
    clearTimeout(this.timers.pong);
  }

  clearTimers() {
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    this.timers = {};
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const fn of [...this.stateListeners]) fn(state);
  }

  // -- delivery ------------------------------------------------------------------

  enqueue(event) {
    this.queue.push(event);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A hidden tab gets no animation frames; the timer keeps notifications coming.
    const flush = () => this.flush();
    if (typeof requestAnimationFrame === "function") requestAnimationFrame(flush);
    setTimeout(flush, 100);
  }

  flush() {
    if (!this.flushScheduled) return;
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (const event of batch) {
      for (const type of [event.type, "*"]) {
        for (const fn of [...(this.listeners.get(type) || [])]) {
          try {
            fn(event);
          } catch (err) {
            console.error(`live listener for ${event.type} failed`, err);
          }
        }
      }
    }
    for (const fn of [...(this.listeners.get("batch") || [])]) fn(batch);
  }
}

/** The console's own socket: a ticket from the cookie session, the page's own origin. */
export function consoleLive(api) {
  return new LiveClient({
    ticket: async () => (await api("POST", "/api/realtime/tickets")).ticket,
    url: (ticket, lastEventId) => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const query = new URLSearchParams({ ticket });
      if (lastEventId !== null && lastEventId !== undefined) query.set("last_event_id", lastEventId);
      return `${scheme}//${location.host}/ws?${query}`;
    },
  });
}
