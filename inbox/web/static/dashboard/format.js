// How the dashboard writes figures: counts, durations, and times in the organization's
// time zone (the analytics answers name it), never the browser's.

const counts = new Intl.NumberFormat(undefined);

/** 12345 → "12,345"; null → "—". */
export function count(value) {
  return value === null || value === undefined ? "—" : counts.format(value);
}

/** 200 → "3 m 20 s", 7260 → "2 h 1 m", null → "—". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  const s = Math.max(0, Math.round(Number(seconds)));
  if (s < 60) return `${s} s`;
  if (s < 3600) return pair(Math.floor(s / 60), "m", s % 60, "s");
  if (s < 86400) return pair(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "m");
  return pair(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
}

function pair(big, bigUnit, small, smallUnit) {
  return small ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`;
}

/** "0.25" → "25 %". */
export function percent(ratio) {
  return ratio === null || ratio === undefined ? "—" : `${Math.round(Number(ratio) * 1000) / 10} %`;
}

function formatter(zone, options) {
  try {
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone || "UTC" });
  } catch {
    // A zone this browser does not know: UTC, and the page says which zone it means.
    return new Intl.DateTimeFormat(undefined, { ...options, timeZone: "UTC" });
  }
}

/** The local hour a bucket starts at: "14:00". */
export function hourLabel(iso, zone) {
  return formatter(zone, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(iso));
}

/** The local day a bucket starts on: "12 Mar". */
export function dayLabel(iso, zone) {
  return formatter(zone, { day: "numeric", month: "short" }).format(new Date(iso));
}

/** The moment, in the zone: "14:05:09". */
export function clock(date, zone) {
  return formatter(zone, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }).format(date);
}

/** Today's date in the zone, as the API takes it: "2026-01-15". */
export function todayIn(zone, now = new Date()) {
  const parts = formatter(zone, { year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(now);
  const part = (type) => parts.find((p) => p.type === type).value;
  return `${part("year")}-${part("month")}-${part("day")}`;
}

/** "2026-01-15" plus `days` (negative for earlier): a calendar date, no time zone involved. */
export function addDays(date, days) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}
