// The streams list: status, ingest rate, last fragment, retention and storage of every stream
// the key may see, refreshed every few seconds; create, edit and delete.
import * as api from "./api";
import * as fmt from "./format";
import { h, clear, toast } from "./dom";
import type { Page } from "./main";
import { createDialog, editDialog, deleteDialog } from "./dialogs";

const REFRESH_MS = 3000;
/** A stream whose last fragment arrived this recently is shown as live. */
export const LIVE_MS = 15_000;

export class StreamsPage implements Page {
  private streams: api.StreamSummary[] = [];
  private selected = 0;
  private filter: HTMLInputElement;
  private body: HTMLTableSectionElement;
  private status: HTMLElement;
  private timer = 0;
  private disposed = false;
  private skew = 0; // server clock minus ours

  constructor(main: HTMLElement) {
    document.title = "Streams · Vigil";
    this.filter = h("input.filter", {
      type: "search",
      placeholder: "Filter streams  /",
      "aria-label": "Filter streams",
      oninput: () => {
        this.selected = 0;
        this.render();
      },
      onkeydown: (e: KeyboardEvent) => {
        if (e.key === "Enter") this.open(this.visible()[this.selected]);
        if (e.key === "ArrowDown" || e.key === "Escape") {
          this.filter.blur();
          e.preventDefault();
        }
      },
    });
    this.body = h("tbody");
    this.status = h("span.muted");
    main.append(
      h(
        "div.toolbar",
        null,
        h("h1", null, "Streams"),
        this.status,
        h("div.spacer"),
        this.filter,
        h("button.primary", { id: "new-stream", onclick: () => this.create(), title: "New stream (n)" }, "New stream"),
      ),
      h(
        "table.streams",
        { id: "streams" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            h("th", null, "Name"),
            h("th", null, "Status"),
            h("th.hide-s", null, "Video"),
            h("th.num.hide-xs", null, "Ingest"),
            h("th.hide-s", null, "Last fragment"),
            h("th.num.hide-s", null, "Retention"),
            h("th.num", null, "Storage"),
            h("th.actions", null, h("span.sr", null, "Actions")),
          ),
        ),
        this.body,
      ),
    );
    void this.refresh();
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
  }

  private async refresh(): Promise<void> {
    try {
      const r = await api.streams();
      this.skew = r.Now * 1000 - Date.now();
      this.streams = r.Streams;
      this.render();
    } catch (e) {
      const err = e as api.ApiError;
      if (!err.signedOut) this.status.textContent = `Could not list streams: ${err.message}`;
    }
    if (!this.disposed) this.timer = window.setTimeout(() => void this.refresh(), REFRESH_MS);
  }

  private visible(): api.StreamSummary[] {
    const f = this.filter.value.trim().toLowerCase();
    return f ? this.streams.filter((s) => s.StreamName.toLowerCase().includes(f)) : this.streams;
  }

  private render(): void {
    const rows = this.visible();
    this.selected = Math.min(this.selected, Math.max(0, rows.length - 1));
    const now = Date.now() + this.skew;
    this.status.textContent = `${this.streams.length} stream${this.streams.length === 1 ? "" : "s"}`;
    clear(this.body);
    if (rows.length === 0) {
      this.body.append(
        h(
          "tr.empty",
          null,
          h(
            "td",
            { colSpan: 8 },
            this.streams.length
              ? "No stream matches the filter."
              : h("span", null, "No streams yet. Create one, then send video to it with ", h("code", null, "vigil put NAME FILE"), "."),
          ),
        ),
      );
    }
    rows.forEach((s, i) => {
      const last = s.LastFragment ? s.LastFragment.ServerTimestamp * 1000 : 0;
      const live = last > 0 && now - last < LIVE_MS;
      const video = s.Tracks.find((t) => t.Kind === "video");
      const tr = h(
        "tr",
        {
          className: i === this.selected ? "selected" : "",
          dataset: { stream: s.StreamName },
          onclick: (e: MouseEvent) => {
            if ((e.target as HTMLElement).closest("button")) return;
            this.open(s);
          },
        },
        h("td.name", null, h("a", { href: `#/streams/${encodeURIComponent(s.StreamName)}` }, s.StreamName), s.DeviceName && h("div.muted.small", null, s.DeviceName)),
        h(
          "td",
          null,
          h("span", { className: `badge ${live ? "live" : "idle"}`, title: live ? "Receiving video" : "No fragment in the last 15 s" }, live ? "Live" : "Idle"),
        ),
        h("td.hide-s", null, video ? `${video.CodecName} ${video.Width ?? "?"}×${video.Height ?? "?"}` : h("span.muted", null, "—")),
        h("td.num.hide-xs", { dataset: { rate: String(s.IngestBytesPerSecond) } }, fmt.rate(s.IngestBytesPerSecond)),
        h("td.hide-s", { title: last ? fmt.dateTime(last) : "" }, last ? fmt.ago(last, now) : h("span.muted", null, "never")),
        h("td.num.hide-s", null, fmt.retention(s.DataRetentionInHours)),
        h("td.num", { title: `${s.Fragments} fragments` }, fmt.bytes(s.StorageBytes)),
        h(
          "td.actions",
          null,
          h("button.ghost.small", { onclick: () => this.edit(s), title: "Edit (e)", "aria-label": `Edit ${s.StreamName}` }, "Edit"),
          h("button.ghost.small.danger", { onclick: () => this.remove(s), title: "Delete", "aria-label": `Delete ${s.StreamName}` }, "Delete"),
        ),
      );
      this.body.append(tr);
    });
  }

  private open(s: api.StreamSummary | undefined): void {
    if (s) location.hash = `#/streams/${encodeURIComponent(s.StreamName)}`;
  }

  private async create(): Promise<void> {
    const name = await createDialog();
    if (name) {
      toast(`Created ${name}`);
      await this.reload();
    }
  }

  private async edit(s: api.StreamSummary): Promise<void> {
    if (await editDialog(s)) {
      toast(`Saved ${s.StreamName}`);
      await this.reload();
    }
  }

  private async remove(s: api.StreamSummary): Promise<void> {
    if (await deleteDialog(s)) {
      toast(`Deleted ${s.StreamName}`);
      await this.reload();
    }
  }

  private async reload(): Promise<void> {
    clearTimeout(this.timer);
    await this.refresh();
  }

  key(e: KeyboardEvent): boolean {
    const rows = this.visible();
    const sel = rows[this.selected];
    switch (e.key) {
      case "/":
        this.filter.focus();
        return true;
      case "j":
      case "ArrowDown":
        this.selected = Math.min(rows.length - 1, this.selected + 1);
        this.render();
        return true;
      case "k":
      case "ArrowUp":
        this.selected = Math.max(0, this.selected - 1);
        this.render();
        return true;
      case "Enter":
        this.open(sel);
        return true;
      case "n":
        void this.create();
        return true;
      case "e":
        if (sel) void this.edit(sel);
        return true;
      case "Delete":
      case "#":
        if (sel) void this.remove(sel);
        return true;
    }
    return false;
  }
}
