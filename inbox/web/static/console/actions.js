// What an agent does to a conversation: assign, change status, snooze, label. Each change
// is one REST call; what the screen shows comes back from the server (the answer, and
// conversation.updated for every other console).

import { h } from "./dom.js";
import { myId } from "./messages.js";

const STATUSES = [
  ["open", "Open"],
  ["pending", "Pending"],
  ["snoozed", "Snoozed"],
  ["closed", "Closed"],
];

export class Actions {
  constructor(ctx, conversationId) {
    this.ctx = ctx;
    this.conversationId = conversationId;
    this.conversation = null;
    this.assignMe = h("button", { type: "button", onclick: () => this.patch({ assignee_id: myId(ctx) }) }, "Assign to me");
    this.assignee = h("select", { "aria-label": "Assignee", onchange: () => this.assigneeChosen() });
    this.status = h("select", { "aria-label": "Conversation status", onchange: () => this.statusChosen() });
    this.snoozeButton = h(
      "button",
      { type: "button", "aria-haspopup": "true", "aria-expanded": "false", onclick: () => this.toggleSnooze() },
      "Snooze",
    );
    this.until = h("input", { type: "datetime-local", "aria-label": "Snooze until" });
    this.snoozeMenu = h(
      "div",
      { class: "menu", role: "group", "aria-label": "Snooze for", hidden: true, onkeydown: (e) => this.menuKey(e) },
      h("button", { type: "button", onclick: () => this.snooze(inHours(1)) }, "1 hour"),
      h("button", { type: "button", onclick: () => this.snooze(tomorrowAt(9)) }, "Tomorrow 9:00"),
      h("button", { type: "button", onclick: () => this.snooze(nextWeek()) }, "Next week"),
      h(
        "form",
        { class: "menu-custom", onsubmit: (e) => this.snoozeCustom(e) },
        this.until,
        h("button", { type: "submit" }, "Snooze until"),
      ),
    );
    this.snoozed = h("span", { class: "snoozed-until" });
    this.labelList = h("ul", { class: "chips" });
    this.newLabel = h("input", {
      type: "text",
      "aria-label": "Add label",
      placeholder: "Add label",
      maxlength: "64",
      onkeydown: (e) => e.key === "Enter" && this.addLabel(e),
    });
    this.problem = h("p", { class: "action-error", role: "alert" });
    this.el = h(
      "div",
      { class: "actions" },
      h("div", { class: "action-row" }, this.assignMe, this.assignee, this.status, h("span", { class: "snooze", onfocusout: (e) => this.focusLeft(e) }, this.snoozeButton, this.snoozeMenu), this.snoozed),
      h("div", { class: "labels", role: "group", "aria-label": "Labels" }, this.labelList, this.newLabel),
      this.problem,
    );
    this.offTeam = ctx.store?.on?.("team", () => this.conversation && this.render(this.conversation));
  }

  /** `force`: also the menu the agent has focused, which a colleague's change otherwise
   * leaves alone rather than change under the agent's hand. */
  render(conversation, { force = false } = {}) {
    this.conversation = conversation;
    const picking = (el) => !force && document.activeElement === el;
    const me = myId(this.ctx);
    this.assignMe.hidden = conversation.assignee_id === me || me === null;
    const team = [...(this.ctx.store?.team?.values?.() || [])];
    const options = [h("option", { value: "" }, "Unassigned")];
    for (const member of team) options.push(h("option", { value: String(member.id) }, member.name || `User ${member.id}`));
    if (conversation.assignee_id && !team.some((m) => m.id === conversation.assignee_id)) {
      options.push(h("option", { value: String(conversation.assignee_id) }, `User ${conversation.assignee_id}`));
    }
    if (!picking(this.assignee)) {
      this.assignee.replaceChildren(...options);
      this.assignee.value = conversation.assignee_id ? String(conversation.assignee_id) : "";
    }
    if (!picking(this.status)) {
      this.status.replaceChildren(
        ...STATUSES.map(([value, label]) =>
          h("option", { value, disabled: value === "snoozed" && conversation.status !== "snoozed" }, label),
        ),
      );
      this.status.value = conversation.status;
    }
    this.snoozed.textContent =
      conversation.status === "snoozed" && conversation.snoozed_until
        ? `until ${new Date(conversation.snoozed_until).toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit", day: "numeric", month: "short" })}`
        : "";
    this.labelList.replaceChildren(
      ...(conversation.labels || []).map((label) =>
        h(
          "li",
          { class: "chip" },
          h("span", {}, label),
          h("button", { type: "button", "aria-label": `Remove label ${label}`, onclick: () => this.labels({ remove: [label] }) }, "×"),
        ),
      ),
    );
  }

  async patch(changes) {
    this.problem.textContent = "";
    try {
      this.render(await this.ctx.api("PATCH", `/api/conversations/${this.conversationId}`, { body: changes }), { force: true });
    } catch (err) {
      this.problem.textContent = err.message;
      if (this.conversation) this.render(this.conversation, { force: true });
    }
  }

  assigneeChosen() {
    const value = this.assignee.value;
    this.patch({ assignee_id: value ? Number(value) : null });
  }

  statusChosen() {
    if (this.status.value === "snoozed") return;
    this.patch({ status: this.status.value });
  }

  toggleSnooze(force) {
    const open = force ?? this.snoozeMenu.hidden;
    this.snoozeMenu.hidden = !open;
    this.snoozeButton.setAttribute("aria-expanded", String(open));
    if (open) this.snoozeMenu.querySelector("button").focus();
    else this.snoozeButton.focus();
  }

  menuKey(event) {
    if (event.key !== "Escape") return;
    // Handled here: the console's own Esc would close the whole conversation.
    event.preventDefault();
    event.stopPropagation();
    this.toggleSnooze(false);
  }

  focusLeft(event) {
    if (this.snoozeMenu.hidden || event.currentTarget.contains(event.relatedTarget)) return;
    this.snoozeMenu.hidden = true;
    this.snoozeButton.setAttribute("aria-expanded", "false");
  }

  snooze(until) {
    this.toggleSnooze(false);
    this.patch({ status: "snoozed", snoozed_until: until.toISOString() });
  }

  snoozeCustom(event) {
    event.preventDefault();
    if (!this.until.value) return;
    this.snooze(new Date(this.until.value));
  }

  async labels(change) {
    this.problem.textContent = "";
    try {
      this.render(await this.ctx.api("POST", `/api/conversations/${this.conversationId}/labels`, { body: change }));
    } catch (err) {
      this.problem.textContent = err.message;
    }
  }

  addLabel(event) {
    event.preventDefault();
    const label = this.newLabel.value.trim();
    if (!label) return;
    this.newLabel.value = "";
    this.labels({ add: [label] });
  }

  close() {
    this.offTeam?.();
  }
}

function inHours(hours) {
  return new Date(Date.now() + hours * 3600 * 1000);
}

function tomorrowAt(hour) {
  const d = new Date();
  d.setDate(d.getDate() + 1);
  d.setHours(hour, 0, 0, 0);
  return d;
}

function nextWeek() {
  const d = tomorrowAt(9);
  // The next Monday at 9:00.
  while (d.getDay() !== 1) d.setDate(d.getDate() + 1);
  return d;
}
