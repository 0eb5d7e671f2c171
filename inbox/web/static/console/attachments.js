// Attachments kept by the service: images as thumbnails that open the full image, other
// files as a link with their name and size, a marker while one is fetched or when it
// could not be. An <img> sends no X-Inbox-Client header, so each file is shown through
// a short-lived signed link the API gives for it. And the composer's "Attach file".

import { h } from "./dom.js";
import { fileSize } from "./format.js";
import { myId } from "./messages.js";

// media id -> {url, until}: a row drawn again (a status change) reuses its link.
const links = new Map();
const LINK_MARGIN_MS = 60_000;

async function link(ctx, id) {
  const known = links.get(id);
  if (known && known.until - LINK_MARGIN_MS > Date.now()) return known.url;
  const answer = await ctx.api("GET", `/api/media/${encodeURIComponent(id)}/link`);
  links.set(id, { url: answer.url, until: Date.parse(answer.expires_at) });
  return answer.url;
}

function shownInline(contentType) {
  const type = String(contentType || "").toLowerCase();
  return /^image\/(png|jpeg|gif|webp)$/.test(type);
}

/** An attachment that carries the service's `media` entry. */
export function mediaEl(ctx, a) {
  const media = a.media;
  const name = media.filename || a.filename || (a.type === "image" ? "Image" : a.type) || "File";
  if (media.status === "pending") {
    return h("span", { class: "file pending", "data-media": "pending" }, `📎 ${name} — fetching…`);
  }
  if (media.status !== "stored") {
    return h(
      "span",
      { class: "file failed", "data-media": "failed", title: media.error || "" },
      `📎 ${name} — could not be fetched`,
    );
  }
  const anchor = h("a", { class: "file", target: "_blank", rel: "noopener noreferrer", "data-media": "stored" });
  if (shownInline(media.content_type)) {
    const img = h("img", { alt: a.caption || (name === "Image" ? "Image" : `Image ${name}`), loading: "lazy" });
    anchor.className = "thumb";
    anchor.setAttribute("aria-label", `Open ${a.caption || name} in a new tab`);
    anchor.append(img);
    link(ctx, media.id)
      .then((url) => {
        img.src = url;
        anchor.href = url;
      })
      .catch(() => anchor.replaceChildren(`📎 ${name} — not available`));
  } else {
    anchor.setAttribute("download", media.filename || "");
    anchor.append(`📎 ${name}${media.size ? ` (${fileSize(media.size)})` : ""}`);
    link(ctx, media.id)
      .then((url) => {
        anchor.href = url;
      })
      .catch(() => anchor.replaceChildren(`📎 ${name} — not available`));
  }
  return anchor;
}

/** The file as it is, with its own Content-Type: the API reads its type from the bytes. */
async function upload(file) {
  const url = new URL("/api/media", location.origin);
  if (file.name) url.searchParams.set("filename", file.name);
  const response = await fetch(url, {
    method: "POST",
    headers: {
      "X-Inbox-Client": "console",
      Accept: "application/json",
      "Content-Type": file.type || "application/octet-stream",
    },
    body: file,
    credentials: "same-origin",
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) throw new Error(payload?.error?.message || `The file was refused (${response.status})`);
  return payload;
}

/** The composer's "Attach file" button: the file is uploaded, then sent with what the
 * reply box holds as its caption (or as a private note, when that is on). */
export function attachControls(composer) {
  const input = h("input", {
    type: "file",
    class: "visually-hidden",
    tabindex: "-1",
    "aria-hidden": "true",
    onchange: () => {
      const [file] = input.files;
      input.value = "";
      if (file) sendFile(composer, file, button);
    },
  });
  const button = h("button", { type: "button", class: "attach", onclick: () => input.click() }, "Attach file");
  return [input, button];
}

async function sendFile(composer, file, button) {
  composer.error.textContent = "";
  button.disabled = true;
  let media;
  try {
    media = await upload(file);
  } catch (err) {
    composer.error.textContent = err.message;
    return;
  } finally {
    button.disabled = false;
  }
  const content = composer.textarea.value.trim();
  composer.textarea.value = "";
  const body = { content, private: composer.note.checked, attachments: [{ media_id: media.id }] };
  const key = crypto.randomUUID();
  const kind = String(media.content_type).split("/")[0];
  const temp = {
    id: `tmp-${key}`,
    conversation_id: composer.conversationId,
    direction: "outbound",
    sender_user_id: myId(composer.ctx),
    content,
    content_type: "attachment",
    attachments: [
      {
        type: ["image", "audio", "video"].includes(kind) ? kind : "document",
        filename: media.filename,
        media: { id: media.id, status: "stored", content_type: media.content_type, size: media.size, filename: media.filename },
      },
    ],
    private: body.private,
    status: body.private ? "sent" : "queued",
    ordered_at: new Date().toISOString(),
  };
  temp.resend = () => composer.post(temp, body, key);
  composer.log.addTemp(temp);
  await composer.post(temp, body, key);
}
