// A day's timeline: where the stream has recordings and where it has gaps, the playhead, the
// clip selection, zoom (wheel, + and −, buttons) and pan (drag). Click to play from a time;
// Shift-drag to select a clip. Works with a mouse, a finger (pointer events) and the keyboard.
import * as api from "./api";
import * as fmt from "./format";
import { h, clear } from "./dom";

const ZOOMS = [24 * 3600e3, 6 * 3600e3, 3600e3, 15 * 60e3, 5 * 60e3, 60e3];
const TICKS: [number, number][] = [
  // view length up to, tick every
  [90e3, 10e3],
  [6 * 60e3, 60e3],
  [20 * 60e3, 2 * 60e3],
  [70 * 60e3, 10 * 60e3],
  [7 * 3600e3, 3600e3],
  [Infinity, 3 * 3600e3],
];

export class Timeline {
  readonly el: HTMLElement;
  private track: HTMLElement;
  private tooltip: HTMLElement;
  private dateInput: HTMLInputElement;
  private summary: HTMLElement;
  private spans: api.Span[] = [];
  private day = "";
  private start = 0;
  private end = 0;
  viewStart = 0;
  viewEnd = 0;
  playhead: number | null = null;
  selection: [number, number] | null = null;
  private timer = 0;
  private loadSeq = 0;

  onSeek: (ms: number) => void = () => {};
  onSelect: (start: number, end: number) => void = () => {};
  onView: () => void = () => {};
  onDay: (day: string) => void = () => {};

  constructor(private stream: string) {
    this.track = h("div.tl-track", { id: "timeline-track", tabIndex: 0, role: "slider", "aria-label": "Timeline: click to play from a time" });
    this.tooltip = h("div.tl-tooltip", { hidden: true });
    this.dateInput = h("input.tl-date", {
      type: "date",
      "aria-label": "Day",
      onchange: () => this.dateInput.value && this.setDay(this.dateInput.value),
    });
    this.summary = h("span.muted.small.tl-summary");
    this.el = h(
      "section.timeline",
      { "aria-label": "Timeline" },
      h(
        "div.tl-bar",
        null,
        h("button.ghost.small", { onclick: () => this.setDay(fmt.nextDay(this.day, -1)), title: "Previous day ([)", "aria-label": "Previous day" }, "‹"),
        this.dateInput,
        h("button.ghost.small", { onclick: () => this.setDay(fmt.nextDay(this.day, 1)), title: "Next day (])", "aria-label": "Next day" }, "›"),
        this.summary,
        h("div.spacer"),
        h("button.ghost.small", { onclick: () => this.zoom(-1), title: "Zoom out (−)", "aria-label": "Zoom out" }, "−"),
        h("button.ghost.small", { onclick: () => this.zoom(1), title: "Zoom in (+)", "aria-label": "Zoom in" }, "+"),
        h("button.ghost.small", { onclick: () => this.fit(), title: "Whole day (0)" }, "Day"),
      ),
      h("div.tl-wrap", null, this.track, this.tooltip),
    );
    this.pointer();
    new ResizeObserver(() => this.render()).observe(this.track);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }

  get currentDay(): string {
    return this.day;
  }

  /** Shows a day (YYYY-MM-DD, local) and loads its recordings. */
  setDay(day: string, keepView = false): void {
    const changed = day !== this.day;
    this.day = day;
    this.dateInput.value = day;
    this.start = fmt.dayStart(day);
    this.end = fmt.dayStart(fmt.nextDay(day));
    if (changed && !keepView) {
      this.viewStart = this.start;
      this.viewEnd = this.end;
      this.onDay(day);
    }
    void this.load();
  }

  private async load(): Promise<void> {
    clearTimeout(this.timer);
    const seq = ++this.loadSeq;
    try {
      const spans = await api.timeline(this.stream, this.start, this.end);
      if (seq !== this.loadSeq) return;
      this.spans = spans;
      const total = spans.reduce((a, s) => a + Math.min(s.End, this.end) - Math.max(s.Start, this.start), 0);
      this.summary.textContent = spans.length
        ? `${spans.length} recording${spans.length === 1 ? "" : "s"}, ${fmt.duration(total)}`
        : "No recordings this day";
      this.render();
      this.onView();
    } catch (e) {
      this.summary.textContent = `Could not load the timeline: ${(e as Error).message}`;
    }
    if (Date.now() < this.end && seq === this.loadSeq) this.timer = window.setTimeout(() => void this.load(), 5000);
  }

  recordings(): api.Span[] {
    return this.spans;
  }

  /** Zooms one step in (+1) or out (−1), around the playhead if it is in view. */
  zoom(dir: number, around?: number): void {
    const len = this.viewEnd - this.viewStart;
    const idx = ZOOMS.findIndex((z) => z <= len + 1);
    const next = ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, (idx < 0 ? ZOOMS.length - 1 : idx) + dir))];
    const c =
      around ?? (this.playhead !== null && this.playhead >= this.viewStart && this.playhead <= this.viewEnd ? this.playhead : (this.viewStart + this.viewEnd) / 2);
    const f = len > 0 ? (c - this.viewStart) / len : 0.5;
    this.setView(c - f * next, c - f * next + next);
  }

  fit(): void {
    this.setView(this.start, this.end);
  }

  /** Shows [a, b] (clamped to the day). */
  setView(a: number, b: number): void {
    const len = Math.min(b - a, this.end - this.start);
    a = Math.max(this.start, Math.min(a, this.end - len));
    this.viewStart = a;
    this.viewEnd = a + len;
    this.render();
    this.onView();
  }

  /** Keeps `t` in view (scrolling the view if needed). */
  follow(t: number): void {
    if (t < this.viewStart || t > this.viewEnd) {
      const len = this.viewEnd - this.viewStart;
      this.setView(t - len / 2, t + len / 2);
    }
  }

  private x(t: number): number {
    return ((t - this.viewStart) / (this.viewEnd - this.viewStart)) * 100;
  }

  timeAt(clientX: number): number {
    const r = this.track.getBoundingClientRect();
    const f = Math.max(0, Math.min(1, (clientX - r.left) / Math.max(1, r.width)));
    return this.viewStart + f * (this.viewEnd - this.viewStart);
  }

  render(): void {
    const t = this.track;
    clear(t);
    t.dataset.viewStart = String(Math.round(this.viewStart));
    t.dataset.viewEnd = String(Math.round(this.viewEnd));
    const len = this.viewEnd - this.viewStart;
    if (len <= 0) return;
    const step = TICKS.find(([upTo]) => len <= upTo)![1];
    const first = Math.ceil(this.viewStart / step) * step;
    for (let s = first; s <= this.viewEnd; s += step) {
      // Ticks on local clock boundaries: step sizes divide an hour or a day in local time
      // except across DST changes, where they stay on UTC boundaries.
      t.append(h("div.tl-tick", { style: { left: `${this.x(s)}%` } }, h("span", null, step >= 60e3 ? fmt.clock(s).slice(0, 5) : fmt.clock(s))));
    }
    for (const s of this.spans) {
      if (s.End < this.viewStart || s.Start > this.viewEnd) continue;
      const a = Math.max(0, this.x(s.Start));
      const b = Math.min(100, this.x(s.End));
      t.append(
        h("div.tl-span", {
          style: { left: `${a}%`, width: `${Math.max(0.15, b - a)}%` },
          dataset: { start: String(s.Start), end: String(s.End) },
          title: `${fmt.clock(s.Start)} – ${fmt.clock(s.End)} (${fmt.duration(s.End - s.Start)})`,
        }),
      );
    }
    const now = Date.now();
    if (now > this.viewStart && now < this.viewEnd) t.append(h("div.tl-now", { style: { left: `${this.x(now)}%` }, title: "Now" }));
    if (this.selection) {
      const [a, b] = this.selection;
      if (b > this.viewStart && a < this.viewEnd) {
        const xa = Math.max(0, this.x(a));
        const xb = Math.min(100, this.x(b));
        t.append(h("div.tl-selection", { style: { left: `${xa}%`, width: `${xb - xa}%` } }));
      }
    }
    if (this.playhead !== null && this.playhead >= this.viewStart && this.playhead <= this.viewEnd) {
      t.append(h("div.tl-playhead", { style: { left: `${this.x(this.playhead)}%` } }));
    }
    t.setAttribute("aria-valuetext", this.playhead ? fmt.dateTime(this.playhead) : "not playing");
  }

  setPlayhead(t: number | null): void {
    this.playhead = t;
    const ph = this.track.querySelector<HTMLElement>(".tl-playhead");
    if (ph && t !== null && t >= this.viewStart && t <= this.viewEnd) ph.style.left = `${this.x(t)}%`;
    else this.render();
  }

  setSelection(sel: [number, number] | null): void {
    this.selection = sel;
    this.render();
  }

  private pointer(): void {
    const t = this.track;
    let down: { x: number; t: number; vs: number; ve: number; shift: boolean; moved: boolean } | null = null;
    t.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      t.setPointerCapture(e.pointerId);
      down = { x: e.clientX, t: this.timeAt(e.clientX), vs: this.viewStart, ve: this.viewEnd, shift: e.shiftKey, moved: false };
    });
    t.addEventListener("pointermove", (e) => {
      const at = this.timeAt(e.clientX);
      this.tooltip.hidden = false;
      this.tooltip.textContent = fmt.clock(at);
      const r = t.getBoundingClientRect();
      this.tooltip.style.left = `${Math.max(0, Math.min(r.width - 60, e.clientX - r.left - 30))}px`;
      if (!down) return;
      if (Math.abs(e.clientX - down.x) > 4) down.moved = true;
      if (!down.moved) return;
      if (down.shift) {
        this.setSelection([Math.min(down.t, at), Math.max(down.t, at)]);
      } else {
        const dt = ((down.x - e.clientX) / Math.max(1, r.width)) * (down.ve - down.vs);
        this.setView(down.vs + dt, down.ve + dt);
      }
    });
    t.addEventListener("pointerleave", () => (this.tooltip.hidden = true));
    t.addEventListener("pointerup", (e) => {
      const d = down;
      down = null;
      if (!d) return;
      if (!d.moved) this.onSeek(this.timeAt(e.clientX));
      else if (d.shift && this.selection) this.onSelect(this.selection[0], this.selection[1]);
    });
    t.addEventListener(
      "wheel",
      (e) => {
        if (Math.abs(e.deltaY) < Math.abs(e.deltaX)) return;
        e.preventDefault();
        this.zoom(e.deltaY < 0 ? 1 : -1, this.timeAt(e.clientX));
      },
      { passive: false },
    );
  }
}
