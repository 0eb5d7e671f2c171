// The live tiles: one labelled group per figure. Most figures come with every
// metrics.update; "Unassigned" and the median first response come from today's overview,
// which the page reads again when the figures move.

import { h } from "/console/dom.js";
import { count, duration } from "./format.js";

const TILES = [
  { key: "open", name: "Open conversations" },
  { key: "unassigned", name: "Unassigned" },
  { key: "messages", name: "Messages today" },
  { key: "first_response", name: "Median first response today" },
  { key: "agents", name: "Agents online" },
  { key: "leads", name: "New leads today" },
];

export class Tiles {
  constructor() {
    this.parts = new Map();
    this.el = h(
      "div",
      { class: "tiles" },
      TILES.map(({ key, name }) => {
        const id = `tile-${key}`;
        const figure = h("p", { class: "tile-figure" }, "—");
        const note = h("p", { class: "tile-note" });
        this.parts.set(key, { figure, note });
        return h("section", { class: "tile", role: "group", "aria-labelledby": id, dataset: { tile: key } }, h("h3", { id, class: "tile-name" }, name), figure, note);
      }),
    );
  }

  show(key, figure, note = "") {
    const part = this.parts.get(key);
    const before = part.figure.textContent;
    part.figure.textContent = figure;
    part.note.textContent = note;
    // Marked on each change (not the first figure) so a wall screen shows which one moved.
    if (before !== figure && before !== "—") {
      part.figure.classList.remove("changed");
      void part.figure.offsetWidth;
      part.figure.classList.add("changed");
    }
  }

  /** A metrics.update's data, or GET /api/analytics/live's answer. */
  live(figures) {
    const received = figures.messages_today_inbound ?? 0;
    const sent = figures.messages_today_outbound ?? 0;
    this.show("open", count(figures.open_conversations), `${count(figures.pending_conversations)} pending`);
    this.show("messages", count(received + sent), `${count(received)} received · ${count(sent)} sent`);
    this.show("agents", count(figures.agents_online));
    this.show("leads", count(figures.leads_today));
    if (figures.unassigned_conversations !== undefined) {
      this.show("unassigned", count(figures.unassigned_conversations), `of ${count(figures.open_conversations + figures.pending_conversations)} not closed`);
    }
    if (figures.median_first_response_seconds_today !== undefined) {
      // The overview's answer adds how many replies and the p90; the figure is the same.
      const part = this.parts.get("first_response");
      this.show("first_response", duration(figures.median_first_response_seconds_today), part?.note.textContent || "");
    }
  }

  /** Today's GET /api/analytics/overview. */
  today(overview) {
    const conversations = overview.conversations;
    this.show("unassigned", count(conversations.unassigned_now), `of ${count(conversations.open_now + conversations.pending_now)} not closed`);
    const first = overview.first_response_seconds;
    this.show("first_response", duration(first.median), first.count ? `${count(first.count)} answered · p90 ${duration(first.p90)}` : "no first replies yet");
  }
}
