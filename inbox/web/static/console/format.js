// How times, sizes and canned-response placeholders read in the console.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "now", "5m", "3h", "Yesterday", "Mon", "12 Mar", "12 Mar 2024": short enough for a row. */
export function relativeTime(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return "";
  const ago = now - date.getTime();
  if (ago < MINUTE) return "now";
  if (ago < HOUR) return `${Math.floor(ago / MINUTE)}m`;
  const today = new Date(now);
  today.setHours(0, 0, 0, 0);
  if (date >= today) return `${Math.floor(ago / HOUR)}h`;
  if (date >= new Date(today.getTime() - DAY)) return "Yesterday";
  if (date >= new Date(today.getTime() - 6 * DAY)) {
    return date.toLocaleDateString(undefined, { weekday: "short" });
  }
  const sameYear = date.getFullYear() === today.getFullYear();
  return date.toLocaleDateString(undefined, {
    day: "numeric",
    month: "short",
    year: sameYear ? undefined : "numeric",
  });
}

/** The full moment, for a tooltip next to a relative time. */
export function fullTime(value) {
  const date = toDate(value);
  return date ? date.toLocaleString() : "";
}

/** "Today", "Yesterday" or the date, for day separators. */
export function dayLabel(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return "";
  const today = new Date(now);
  today.setHours(0, 0, 0, 0);
  const day = new Date(date);
  day.setHours(0, 0, 0, 0);
  const days = Math.round((today - day) / DAY);
  if (days === 0) return "Today";
  if (days === 1) return "Yesterday";
  return date.toLocaleDateString(undefined, {
    weekday: "long",
    day: "numeric",
    month: "long",
    year: date.getFullYear() === today.getFullYear() ? undefined : "numeric",
  });
}

/** 1536 → "1.5 KB". */
export function fileSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/**
 * fill("Hi {{contact.name}}", {contact: {name: "Ana"}}) → "Hi Ana". A placeholder with no
 * value becomes empty rather than showing braces to a customer. The result is text.
 */
export function fill(template, values) {
  return String(template ?? "").replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_, path) => {
    let value = values;
    for (const key of path.split(".")) value = value == null ? undefined : value[key];
    return value === null || value === undefined ? "" : String(value);
  });
}

/** First letters of up to two words, for an avatar. */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  return (words.slice(0, 2).map((w) => [...w][0]).join("") || "?").toUpperCase();
}
