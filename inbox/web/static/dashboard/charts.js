// Small SVG charts drawn with DOM calls: bars or lines for a few series over labelled
// buckets. Each chart is a figure named by its title; the drawing is one image whose
// accessible name sums it up, and a visually hidden table holds every figure.

import { h } from "/console/dom.js";

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { top: 12, right: 10, bottom: 24, left: 44 };
const LABEL_EVERY_PX = 52;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children) el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

/** The smallest of 2, 4, 6, 8, 10 × 10^n at or above `value`: the gridline halfway is a
 * whole number too, as counts are. */
function niceCeiling(value) {
  if (value <= 2) return 2;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 6, 8, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

let charts = 0;

export class Chart {
  /**
   * new Chart({title: "Messages per hour, today", kind: "bars" | "lines", format: (v) => "12"})
   * then chart.set(["14:00", ...], [{name: "Received", values: [...]}, ...]).
   */
  constructor({ title, kind = "bars", format = String }) {
    this.id = `chart-${++charts}`;
    this.title = title;
    this.kind = kind;
    this.format = format;
    this.labels = [];
    this.series = [];
    this.heading = h("h3", { id: `${this.id}-title` }, title);
    this.plot = h("div", { class: "chart-plot" });
    this.legend = h("ul", { class: "chart-legend", "aria-hidden": "true" });
    this.table = h("table", { class: "sr-only" });
    this.el = h("figure", { class: "chart", "aria-labelledby": this.heading.id }, this.heading, this.plot, this.legend, h("figcaption", {}, this.table));
    this.width = 0;
    this.resize = new ResizeObserver(() => {
      if (this.plot.clientWidth !== this.width) this.draw();
    });
    this.resize.observe(this.plot);
  }

  set(labels, series) {
    this.labels = labels;
    this.series = series;
    this.legend.replaceChildren(...series.map((one, i) => h("li", {}, h("span", { class: `swatch tone-${i}` }), one.name)));
    this.table.replaceChildren(
      h("caption", {}, this.title),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Period"), series.map((one) => h("th", { scope: "col" }, one.name)))),
      h("tbody", {}, labels.map((label, i) => h("tr", {}, h("th", { scope: "row" }, label), series.map((one) => h("td", {}, this.format(one.values[i])))))),
    );
    this.draw();
  }

  /** "Received: 12 in all, most 4 at 14:00. Sent: ..." — what a glance at the chart tells. */
  summary() {
    if (!this.labels.length) return "no data";
    return this.series
      .map((one) => {
        const present = one.values.filter((v) => v !== null && v !== undefined);
        if (!present.length) return `${one.name}: none`;
        const peak = Math.max(...present);
        const at = this.labels[one.values.indexOf(peak)];
        const total = present.reduce((a, b) => a + b, 0);
        return `${one.name}: ${this.format(total)} in all, most ${this.format(peak)} at ${at}`;
      })
      .join(". ");
  }

  draw() {
    const width = (this.width = this.plot.clientWidth || 600);
    const height = this.plot.clientHeight || 200;
    const plotW = Math.max(10, width - MARGIN.left - MARGIN.right);
    const plotH = Math.max(10, height - MARGIN.top - MARGIN.bottom);
    const values = this.series.flatMap((one) => one.values).filter((v) => v !== null && v !== undefined);
    const top = niceCeiling(Math.max(0, ...values));
    const y = (v) => MARGIN.top + plotH - (v / top) * plotH;
    const n = Math.max(1, this.labels.length);
    const slot = plotW / n;
    const x = (i) => MARGIN.left + slot * i + slot / 2;

    const svg = s("svg", { role: "img", "aria-label": `${this.title}. ${this.summary()}`, width, height, viewBox: `0 0 ${width} ${height}`, class: `chart-svg ${this.kind}` });
    for (const v of [0, top / 2, top]) {
      svg.append(s("line", { class: "grid", x1: MARGIN.left, x2: width - MARGIN.right, y1: y(v), y2: y(v) }));
      svg.append(s("text", { class: "axis", x: MARGIN.left - 6, y: y(v) + 4, "text-anchor": "end" }, this.format(v)));
    }
    const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(plotW / LABEL_EVERY_PX))));
    this.labels.forEach((label, i) => {
      if (i % every === 0) svg.append(s("text", { class: "axis", x: x(i), y: height - 6, "text-anchor": "middle" }, label));
    });
    if (this.kind === "lines") this.drawLines(svg, x, y);
    else this.drawBars(svg, slot, x, y);
    this.plot.replaceChildren(svg);
  }

  drawBars(svg, slot, x, y) {
    const count = Math.max(1, this.series.length);
    // Few buckets (one channel) would make slabs: a bar is never wider than this.
    const band = Math.min(slot * 0.8, 56 * count);
    const bar = Math.max(1, band / count);
    this.series.forEach((one, k) => {
      one.values.forEach((v, i) => {
        const value = v ?? 0;
        const left = x(i) - band / 2 + k * bar;
        const rect = s("rect", { class: `bar tone-${k}`, x: left, y: y(value), width: Math.max(1, bar - 1), height: Math.max(0, y(0) - y(value)) });
        rect.append(s("title", {}, `${this.labels[i]}: ${this.format(v)} ${one.name.toLowerCase()}`));
        svg.append(rect);
      });
    });
  }

  drawLines(svg, x, y) {
    this.series.forEach((one, k) => {
      // A null bucket (no figure at all) breaks the line rather than dropping it to zero.
      let run = [];
      const flush = () => {
        if (run.length) svg.append(s("polyline", { class: `line tone-${k}`, points: run.join(" ") }));
        run = [];
      };
      one.values.forEach((v, i) => {
        if (v === null || v === undefined) return flush();
        run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
        if (one.values.length <= 60) {
          const dot = s("circle", { class: `dot tone-${k}`, cx: x(i), cy: y(v), r: 2.5 });
          dot.append(s("title", {}, `${this.labels[i]}: ${this.format(v)} ${one.name.toLowerCase()}`));
          svg.append(dot);
        }
      });
      flush();
    });
  }

  close() {
    this.resize.disconnect();
  }
}
