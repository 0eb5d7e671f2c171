// What the dashboard reads back in time: messages per hour today and per day over 30
// days, and a report over a chosen range (figures, messages over the range, by channel,
// per agent, CSV downloads). Every day and hour is the organization's, as the API says.

import { h } from "/console/dom.js";
import { Chart } from "./charts.js";
import { addDays, count, dayLabel, duration, hourLabel, percent, todayIn } from "./format.js";

const DIRECTIONS = [
  { metric: "messages_received", name: "Received" },
  { metric: "messages_sent", name: "Sent" },
];
const PRESETS = [
  { name: "Today", days: 1 },
  { name: "7 days", days: 7 },
  { name: "30 days", days: 30 },
];

/** Received and sent per bucket over a range: labels and the two series, and the zone. */
async function messagesOver(api, query, interval) {
  const answers = await Promise.all(DIRECTIONS.map(({ metric }) => api("GET", "/api/analytics/trends", { query: { ...query, metric, interval } })));
  const zone = answers[0].data.timezone;
  const label = interval === "hour" ? hourLabel : dayLabel;
  return {
    zone,
    labels: answers[0].data.points.map((p) => label(p.start, zone)),
    series: answers.map((answer, i) => ({ name: DIRECTIONS[i].name, values: answer.data.points.map((p) => p.value) })),
  };
}

/** The range as the API takes it: dates in the zone, `to` exclusive. */
function apiRange(range) {
  return { from: range.from, to: addDays(range.to, 1) };
}

export class Trends {
  constructor(api) {
    this.api = api;
    this.hourly = new Chart({ title: "Messages per hour, today", kind: "bars", format: count });
    this.daily = new Chart({ title: "Messages per day, last 30 days", kind: "lines", format: count });
    this.el = h("section", { class: "panel trends", "aria-labelledby": "trends-title" }, h("h2", { id: "trends-title" }, "Trends"), h("div", { class: "charts" }, this.hourly.el, this.daily.el));
  }

  async load(zone) {
    const today = todayIn(zone);
    const [hours, days] = await Promise.all([
      messagesOver(this.api, {}, "hour"),
      messagesOver(this.api, apiRange({ from: addDays(today, -29), to: today }), "day"),
    ]);
    this.hourly.set(hours.labels, hours.series);
    this.daily.set(days.labels, days.series);
  }

  close() {
    this.hourly.close();
    this.daily.close();
  }
}

export class Report {
  /** `controls`: the range picker and the CSV links; a wall screen shows today without them. */
  constructor(api, { controls = true, download = null } = {}) {
    this.api = api;
    this.download = download;
    this.range = null;
    this.zone = "UTC";
    this.title = h("h2", { id: "report-title" }, "Today");
    this.status = h("p", { class: "report-status", role: "status" });
    this.figures = h("dl", { class: "figures" });
    this.overTime = new Chart({ title: "Messages over the range", kind: "bars", format: count });
    this.byChannel = new Chart({ title: "Messages by channel", kind: "bars", format: count });
    this.agents = h("tbody");
    this.links = h("ul", { class: "csv-links" });
    this.picker = controls ? this.rangePicker() : null;
    const table = h(
      "div",
      { class: "table-scroll" },
      h(
        "table",
        { class: "agents" },
        h("caption", {}, "Agents"),
        h("thead", {}, h("tr", {}, ["Agent", "Online", "Assigned", "Closed", "Replies sent", "Median first response"].map((name, i) => h("th", { scope: "col", class: i > 1 ? "num" : null }, name)))),
        this.agents,
      ),
    );
    this.el = h(
      "section",
      { class: "panel report", "aria-labelledby": this.title.id },
      h("div", { class: "report-head" }, this.title, this.picker),
      this.status,
      this.figures,
      h("div", { class: "charts" }, this.overTime.el, this.byChannel.el),
      table,
      controls ? h("div", { class: "downloads" }, h("h3", {}, "Download as CSV"), this.links) : null,
    );
  }

  rangePicker() {
    this.fromInput = h("input", { type: "date", id: "range-from", required: true });
    this.toInput = h("input", { type: "date", id: "range-to", required: true });
    this.presetButtons = PRESETS.map((preset) =>
      h("button", { type: "button", class: "preset", "aria-pressed": String(preset.days === 1), onclick: () => this.preset(preset.days) }, preset.name),
    );
    const form = h(
      "form",
      { class: "range", "aria-label": "Range", novalidate: true },
      h("div", { class: "presets", role: "group", "aria-label": "Presets" }, this.presetButtons),
      h("span", { class: "field" }, h("label", { for: this.fromInput.id }, "From"), this.fromInput),
      h("span", { class: "field" }, h("label", { for: this.toInput.id }, "To"), this.toInput),
      h("button", { type: "submit", class: "primary" }, "Show"),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const from = this.fromInput.value;
      const to = this.toInput.value;
      if (!from || !to) return this.say("Choose both dates");
      if (to < from) return this.say("The range ends before it begins: pick a later “To” date");
      this.show({ from, to });
    });
    return form;
  }

  /** The last `days` days, today included, in the organization's zone. */
  preset(days) {
    const today = todayIn(this.zone);
    this.show({ from: addDays(today, 1 - days), to: today });
  }

  say(text) {
    this.status.textContent = text;
  }

  async show(range) {
    this.range = range;
    if (this.picker) {
      this.fromInput.value = range.from;
      this.toInput.value = range.to;
      const today = todayIn(this.zone);
      PRESETS.forEach((preset, i) => {
        const on = range.to === today && range.from === addDays(today, 1 - preset.days);
        this.presetButtons[i].setAttribute("aria-pressed", String(on));
      });
    }
    await this.load();
  }

  /** Reads the range again (the figures moved); today when no range was chosen. */
  async load() {
    const range = this.range || { from: todayIn(this.zone), to: todayIn(this.zone) };
    if (this.picker && !this.fromInput.value && !this.toInput.value) {
      this.fromInput.value = range.from;
      this.toInput.value = range.to;
    }
    const query = apiRange(range);
    const days = Math.round((Date.parse(query.to) - Date.parse(query.from)) / 86_400_000);
    const interval = days <= 2 ? "hour" : days <= 120 ? "day" : "week";
    this.say("Loading…");
    try {
      const [overview, agents, over] = await Promise.all([
        this.api("GET", "/api/analytics/overview", { query }),
        this.api("GET", "/api/analytics/agents", { query }),
        messagesOver(this.api, query, interval),
      ]);
      if (range !== (this.range || range)) return;
      this.zone = overview.data.range.timezone;
      this.title.textContent = range.from === range.to ? (range.from === todayIn(this.zone) ? "Today" : range.from) : `${range.from} to ${range.to}`;
      this.renderFigures(overview.data);
      this.overTime.set(over.labels, over.series);
      const channels = overview.data.by_channel;
      this.byChannel.set(channels.map((c) => c.name), [
        { name: "Received", values: channels.map((c) => c.received) },
        { name: "Sent", values: channels.map((c) => c.sent) },
      ]);
      this.renderAgents(agents.data);
      this.renderLinks(query, interval);
      this.say(`Days and hours in ${this.zone}`);
    } catch (err) {
      this.say(err.code === "VALIDATION_ERROR" ? `This range cannot be shown: ${err.message}` : `The figures could not be read: ${err.message}`);
    }
  }

  renderFigures(o) {
    const items = [
      ["Conversations opened", count(o.conversations.opened)],
      ["Conversations closed", count(o.conversations.closed)],
      ["Messages received", count(o.messages.received)],
      ["Messages sent", count(o.messages.sent)],
      ["New contacts", count(o.contacts.created)],
      ["New leads", count(o.leads.created)],
      ["Leads converted", `${count(o.leads.converted)} (${percent(o.leads.conversion_rate)})`],
      ["Median first response", duration(o.first_response_seconds.median)],
      ["Median resolution", duration(o.resolution_seconds.median)],
    ];
    this.figures.replaceChildren(...items.map(([name, value]) => h("div", { class: "figure" }, h("dt", {}, name), h("dd", {}, value))));
  }

  renderAgents(rows) {
    if (!rows.length) {
      this.agents.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No agents yet")));
      return;
    }
    this.agents.replaceChildren(
      ...rows.map((a) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, a.name),
          h("td", {}, h("span", { class: `dot ${a.online ? "online" : "offline"}`, "aria-hidden": "true" }), a.online ? " Online" : " Offline"),
          h("td", { class: "num" }, count(a.conversations_assigned)),
          h("td", { class: "num" }, count(a.conversations_closed)),
          h("td", { class: "num" }, count(a.messages_sent)),
          h("td", { class: "num" }, duration(a.first_response_seconds_median)),
        ),
      ),
    );
  }

  renderLinks(query, interval) {
    if (!this.download) return;
    const link = (name, path, extra = {}) => {
      const params = new URLSearchParams({ ...query, ...extra, format: "csv" });
      const href = `${path}?${params}`;
      return h("li", {}, h("a", { href, download: "", onclick: (e) => this.download(e, href) }, name));
    };
    this.links.replaceChildren(
      link("Overview CSV", "/api/analytics/overview"),
      link("Messages received CSV", "/api/analytics/trends", { metric: "messages_received", interval }),
      link("Messages sent CSV", "/api/analytics/trends", { metric: "messages_sent", interval }),
      link("Agents CSV", "/api/analytics/agents"),
    );
  }

  close() {
    this.overTime.close();
    this.byChannel.close();
  }
}
