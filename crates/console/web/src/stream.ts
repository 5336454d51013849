// A stream's page: the player (live, or the archive from a chosen time), the day's timeline,
// a strip of thumbnails across the timeline's view, and clip download.
import * as api from "./api";
import * as fmt from "./format";
import { h, append, clear, toast } from "./dom";
import type { Page } from "./main";
import { Player } from "./player";
import { Timeline } from "./timeline";
import { editDialog } from "./dialogs";
import { LIVE_MS } from "./streams";

const THUMBS = 10;

/** `f` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: T[], limit: number, f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
/** How far past the chosen time an archive session reaches. */
const ARCHIVE_SPAN_MS = 3 * 3600e3;
/** How far before it (a fragment that began earlier holds the chosen time). */
const ARCHIVE_LEAD_MS = 30e3;

export class StreamPage implements Page {
  private info?: api.StreamSummary;
  private player = new Player();
  private timeline: Timeline;
  private thumbs: HTMLElement;
  private title: HTMLElement;
  private stats: HTMLElement;
  private notice: HTMLElement;
  private clock: HTMLElement;
  private modeLabel: HTMLElement;
  private preview: HTMLImageElement;
  private clipFrom: HTMLInputElement;
  private clipTo: HTMLInputElement;
  private clipLink: HTMLAnchorElement;
  private clipNote: HTMLElement;
  private playable = true;
  private codecNotice = "";
  private timers: number[] = [];
  private thumbTimer = 0;
  private thumbSeq = 0;
  private disposed = false;

  constructor(
    main: HTMLElement,
    private name: string,
    query: URLSearchParams,
  ) {
    document.title = `${name} · Vigil`;
    this.title = h("h1", null, name);
    this.stats = h("div.stats", { id: "stream-stats" });
    this.notice = h("div.notice", { hidden: true, id: "player-notice", role: "status" });
    this.clock = h("span.clock", { id: "player-clock" }, "—");
    this.modeLabel = h("span.mode", { id: "player-mode" });
    this.preview = h("img.preview", { hidden: true, alt: "Latest picture", id: "preview" });
    this.timeline = new Timeline(name);
    this.thumbs = h("div.thumbs", { id: "thumbs", "aria-label": "Thumbnails across the timeline" });
    this.clipFrom = h("input.time", { id: "clip-from", placeholder: "hh:mm:ss", "aria-label": "Clip start", oninput: () => this.clipChanged() });
    this.clipTo = h("input.time", { id: "clip-to", placeholder: "hh:mm:ss", "aria-label": "Clip end", oninput: () => this.clipChanged() });
    this.clipLink = h("a.button.primary", { id: "clip-download", download: "", href: "#", "aria-disabled": "true" }, "Download MP4");
    this.clipNote = h("span.muted.small", { id: "clip-note" });

    main.append(
      h(
        "div.toolbar",
        null,
        h("a.ghost.back", { href: "#/", title: "Streams (g s)", "aria-label": "Back to streams" }, "←"),
        this.title,
        this.stats,
        h("div.spacer"),
        h("button.ghost", { id: "go-live", onclick: () => void this.goLive(), title: "Live (l)" }, "● Live"),
        h("button.ghost", { onclick: () => void this.edit(), title: "Edit stream" }, "Edit"),
      ),
      h(
        "div.stage",
        null,
        h("div.player-wrap", null, this.player.box, this.preview, this.notice, h("div.overlay", null, this.modeLabel, this.clock)),
      ),
      this.timeline.el,
      this.thumbs,
      h(
        "section.clip",
        { "aria-label": "Clip" },
        h("h2", null, "Clip"),
        h("button.ghost.small", { onclick: () => this.mark("in"), title: "Mark start at the playhead (i)" }, "Mark in"),
        this.clipFrom,
        h("span", null, "–"),
        this.clipTo,
        h("button.ghost.small", { onclick: () => this.mark("out"), title: "Mark end at the playhead (o)" }, "Mark out"),
        this.clipLink,
        this.clipNote,
        h("p.hint", null, "Shift-drag on the timeline to select. A clip holds at most 100 MB or 200 fragments."),
      ),
    );

    this.player.onTime = (t) => {
      this.clock.textContent = t ? fmt.dateTime(t) : "—";
      if (t) {
        this.timeline.setPlayhead(t);
        if (this.player.mode === "archive" && fmt.day(t) !== this.timeline.currentDay) this.timeline.setDay(fmt.day(t));
        else this.timeline.follow(t);
      }
    };
    this.player.onError = (m) => this.showNotice(m);
    this.player.onEnded = () => this.showNotice("End of the recording. Press l for live, or pick a time on the timeline.");
    this.timeline.onSeek = (t) => void this.playAt(t);
    this.timeline.onSelect = (a, b) => this.setClip(a, b);
    this.timeline.onView = () => this.scheduleThumbs();
    this.timeline.onDay = (d) => this.updateHash({ day: d });

    const day = query.get("day") ?? fmt.day(Date.now());
    this.timeline.setDay(day);
    const t = Number(query.get("t"));
    void this.start(Number.isFinite(t) && t > 0 ? t : null);
  }

  dispose(): void {
    this.disposed = true;
    this.player.stop();
    this.timeline.dispose();
    this.timers.forEach(clearInterval);
    clearTimeout(this.thumbTimer);
  }

  private async start(at: number | null): Promise<void> {
    await this.refreshInfo();
    this.timers.push(window.setInterval(() => void this.refreshInfo(), 5000));
    if (!this.info) return;
    const video = this.info.Tracks.find((t) => t.Kind === "video");
    this.playable = Player.supported(video?.Codec);
    if (!this.playable) {
      this.codecNotice =
        `This browser cannot play ${video?.CodecName ?? "this codec"} (${video?.Codec}) video. ` +
        "Showing still pictures instead; play the stream with a player that decodes it (vigil get NAME | ffplay -).";
      this.showNotice(null);
      this.player.box.hidden = true;
    }
    if (at !== null) await this.playAt(at);
    else await this.goLive();
  }

  private async refreshInfo(): Promise<void> {
    try {
      const r = await api.streams();
      const s = r.Streams.find((x) => x.StreamName === this.name);
      if (!s) {
        this.showNotice(`There is no stream ${this.name} (or this key may not see it).`);
        return;
      }
      this.info = s;
      const now = r.Now * 1000;
      const last = s.LastFragment ? s.LastFragment.ServerTimestamp * 1000 : 0;
      const live = last > 0 && now - last < LIVE_MS;
      const video = s.Tracks.find((t) => t.Kind === "video");
      const audio = s.Tracks.find((t) => t.Kind === "audio");
      clear(this.stats);
      append(this.stats, [
        h("span", { className: `badge ${live ? "live" : "idle"}` }, live ? "Live" : "Idle"),
        video && h("span.chip", null, `${video.CodecName} ${video.Width}×${video.Height}`),
        audio && h("span.chip", null, audio.CodecName),
        h("span.chip", { title: "Ingest rate" }, fmt.rate(s.IngestBytesPerSecond)),
        h("span.chip", { title: `${s.Fragments} fragments` }, fmt.bytes(s.StorageBytes)),
        h("span.chip", { title: "Retention" }, `keeps ${fmt.retention(s.DataRetentionInHours)}`),
        last ? h("span.muted.small", { title: fmt.dateTime(last) }, `last fragment ${fmt.ago(last, now)}`) : null,
      ]);
    } catch (e) {
      if (!(e as api.ApiError).signedOut) this.showNotice(`Could not read the stream: ${(e as Error).message}`);
    }
  }

  /** Shows `text` (or nothing) under the standing notice about an unplayable codec. */
  private showNotice(text: string | null): void {
    const parts = [this.codecNotice, text].filter((p): p is string => !!p);
    this.notice.hidden = parts.length === 0;
    this.notice.textContent = parts.join(" ");
  }

  private updateHash(p: { day?: string; t?: number | null }): void {
    const q = new URLSearchParams();
    q.set("day", p.day ?? this.timeline.currentDay);
    if (p.t) q.set("t", String(Math.round(p.t)));
    const hash = `#/streams/${encodeURIComponent(this.name)}?${q}`;
    history.replaceState(null, "", hash);
  }

  async goLive(): Promise<void> {
    this.showNotice(null);
    this.modeLabel.textContent = "LIVE";
    this.modeLabel.className = "mode live";
    const today = fmt.day(Date.now());
    if (this.timeline.currentDay !== today) this.timeline.setDay(today);
    this.updateHash({ day: today });
    if (!this.playable) {
      this.startPreview(null);
      return;
    }
    try {
      this.player.live(await api.liveUrl(this.name));
    } catch (e) {
      const err = e as api.ApiError;
      this.player.stop();
      this.showNotice(
        err.type === "ResourceNotFoundException"
          ? "Nothing is being recorded right now. Pick a time on the timeline to watch recordings."
          : err.type === "NoDataRetentionException"
            ? "This stream keeps no data (retention 0), so it cannot be played over HLS; read it with GetMedia (vigil get)."
            : `Live view unavailable: ${err.message}`,
      );
    }
  }

  async playAt(t: number): Promise<void> {
    this.showNotice(null);
    this.modeLabel.textContent = "ARCHIVE";
    this.modeLabel.className = "mode archive";
    this.timeline.setPlayhead(t);
    this.updateHash({ t });
    if (!this.playable) {
      this.startPreview(t);
      return;
    }
    if (this.player.seekWithin(t)) return;
    const now = Date.now();
    try {
      const url = await api.archiveUrl(this.name, t - ARCHIVE_LEAD_MS, Math.min(now, t + ARCHIVE_SPAN_MS));
      this.player.archive(url, t);
    } catch (e) {
      const err = e as api.ApiError;
      this.player.stop();
      this.showNotice(
        err.type === "ResourceNotFoundException" ? `No recording at or after ${fmt.dateTime(t)}.` : `Cannot play the archive: ${err.message}`,
      );
    }
  }

  /** For codecs the browser cannot play: the picture at `t`, or the newest, every 2 s. */
  private previewTimer = 0;
  private startPreview(t: number | null): void {
    clearInterval(this.previewTimer);
    this.preview.hidden = false;
    const show = async () => {
      // Live: the first frame of the newest fragment (a key frame).
      const last = this.info?.LastFragment;
      const at = t ?? (last ? last.ProducerTimestamp * 1000 : Date.now() - 3000);
      try {
        const imgs = await api.images(this.name, at, at + 2000, 1, 1280);
        const img = imgs.find((i) => i.ImageContent);
        if (img) {
          this.preview.src = `data:image/jpeg;base64,${img.ImageContent}`;
          this.clock.textContent = fmt.dateTime(img.TimeStamp * 1000);
          this.timeline.setPlayhead(img.TimeStamp * 1000);
        } else if (imgs.length && imgs.every((i) => i.Error === "MEDIA_ERROR")) {
          // The server cannot decode this codec (H.265 needs its `ffmpeg` build).
          this.showNotice(
            `Pictures unavailable too: this server cannot decode ${this.videoCodec()} pictures ` +
              "(a server built with the ffmpeg feature can).",
          );
          clearInterval(this.previewTimer);
        } else if (imgs[0]?.Error) {
          this.clock.textContent = imgs[0].Error === "NO_MEDIA" ? "no picture at this time" : `no picture: ${imgs[0].Error}`;
        }
      } catch (e) {
        this.showNotice(`Pictures unavailable too: ${(e as Error).message}`);
        clearInterval(this.previewTimer);
      }
    };
    void show();
    if (t === null) this.previewTimer = window.setInterval(() => void show(), 2000);
    this.timers.push(this.previewTimer);
  }

  private videoCodec(): string {
    return this.info?.Tracks.find((t) => t.Kind === "video")?.CodecName ?? "these";
  }

  private scheduleThumbs(): void {
    clearTimeout(this.thumbTimer);
    this.thumbTimer = window.setTimeout(() => void this.loadThumbs(), 400);
  }

  private async loadThumbs(): Promise<void> {
    if (this.disposed) return;
    const seq = ++this.thumbSeq;
    const spans = this.timeline.recordings();
    const a = Math.max(this.timeline.viewStart, spans[0]?.Start ?? Infinity);
    const b = Math.min(this.timeline.viewEnd, spans[spans.length - 1]?.End ?? -Infinity, Date.now() - 2000);
    if (!(b > a)) {
      clear(this.thumbs);
      this.thumbs.append(h("p.muted.small", null, "No recordings in view."));
      return;
    }
    // Times spread evenly over the recorded time in view, gaps skipped (a minute's recording in
    // a five-minute view gets a full row, not two), at least a second apart; GetImages takes at
    // most 300 s per call, so one small call per time.
    const pieces = spans.map((s) => [Math.max(s.Start, a), Math.min(s.End, b)]).filter(([s, e]) => e > s);
    const recorded = pieces.reduce((sum, [s, e]) => sum + (e - s), 0);
    const count = Math.min(THUMBS, Math.max(1, Math.floor(recorded / 1000)));
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      let at = (recorded * (i + 0.5)) / count;
      for (const [s, e] of pieces) {
        if (at < e - s) {
          times.push(Math.max(s, Math.min(s + at, e - 1000)));
          break;
        }
        at -= e - s;
      }
    }
    try {
      const imgs = (await mapLimit(times, 4, (t) => api.images(this.name, t, t + 1000, 1))).flat();
      if (seq !== this.thumbSeq) return;
      clear(this.thumbs);
      const shown = imgs.filter((i) => i.ImageContent);
      for (const i of shown) {
        const ms = i.TimeStamp * 1000;
        this.thumbs.append(
          h(
            "button.thumb",
            { onclick: () => void this.playAt(ms), title: `Play from ${fmt.clock(ms)}`, dataset: { time: String(ms) } },
            h("img", { src: `data:image/jpeg;base64,${i.ImageContent}`, alt: fmt.clock(ms), width: 160 }),
            h("span", null, fmt.clock(ms)),
          ),
        );
      }
      if (!shown.length) {
        const err = imgs.find((i) => i.Error)?.Error;
        this.thumbs.append(h("p.muted.small", null, err && err !== "NO_MEDIA" ? `No thumbnails: ${err}` : "No pictures in view."));
      }
    } catch (e) {
      if (seq !== this.thumbSeq) return;
      clear(this.thumbs);
      this.thumbs.append(h("p.muted.small", null, `No thumbnails: ${(e as Error).message}`));
    }
  }

  private clip: [number, number] | null = null;

  private setClip(a: number, b: number): void {
    this.clip = [Math.min(a, b), Math.max(a, b)];
    this.clipFrom.value = fmt.clock(this.clip[0]);
    this.clipTo.value = fmt.clock(this.clip[1]);
    this.timeline.setSelection(this.clip);
    this.updateClipLink();
  }

  private clipChanged(): void {
    const day = this.timeline.currentDay;
    const a = fmt.parseClock(this.clipFrom.value, day);
    const b = fmt.parseClock(this.clipTo.value, day);
    this.clip = a !== null && b !== null ? [a, b] : null;
    this.timeline.setSelection(this.clip && this.clip[1] > this.clip[0] ? this.clip : null);
    this.updateClipLink();
  }

  private updateClipLink(): void {
    const c = this.clip;
    const ok = !!c && c[1] > c[0];
    this.clipLink.setAttribute("aria-disabled", String(!ok));
    this.clipLink.href = ok ? api.clipUrl(this.name, c![0], c![1]) : "#";
    this.clipNote.textContent = c ? (ok ? fmt.duration(c[1] - c[0]) : "The end must be after the start.") : "";
  }

  private mark(which: "in" | "out"): void {
    const t = this.player.playingTime() ?? this.timeline.playhead;
    if (t === null) {
      toast("Play something first: the mark goes at the playhead.");
      return;
    }
    const [a, b] = this.clip ?? [t, t];
    if (which === "in") this.setClip(t, Math.max(t, b));
    else this.setClip(Math.min(a, t), t);
  }

  private download(): void {
    if (this.clipLink.getAttribute("aria-disabled") === "true") {
      toast("Select a range first (i and o, or Shift-drag on the timeline).");
      return;
    }
    this.clipLink.click();
  }

  private async edit(): Promise<void> {
    if (this.info && (await editDialog(this.info))) {
      toast(`Saved ${this.name}`);
      await this.refreshInfo();
    }
  }

  key(e: KeyboardEvent): boolean {
    const p = this.player;
    switch (e.key) {
      case " ":
      case "k":
        p.togglePlay();
        return true;
      case "ArrowLeft":
        this.step(e.shiftKey ? -60 : -10);
        return true;
      case "ArrowRight":
        this.step(e.shiftKey ? 60 : 10);
        return true;
      case "l":
        void this.goLive();
        return true;
      case "+":
      case "=":
        this.timeline.zoom(1);
        return true;
      case "-":
      case "_":
        this.timeline.zoom(-1);
        return true;
      case "0":
        this.timeline.fit();
        return true;
      case "[":
        this.timeline.setDay(fmt.nextDay(this.timeline.currentDay, -1));
        return true;
      case "]":
        this.timeline.setDay(fmt.nextDay(this.timeline.currentDay, 1));
        return true;
      case "i":
        this.mark("in");
        return true;
      case "o":
        this.mark("out");
        return true;
      case "d":
        this.download();
        return true;
      case "f":
        if (document.fullscreenElement) void document.exitFullscreen();
        else void p.box.requestFullscreen?.();
        return true;
      case "Escape":
        location.hash = "#/";
        return true;
    }
    return false;
  }

  private step(seconds: number): void {
    const t = this.player.playingTime();
    if (this.player.mode === "live" && seconds < 0 && t !== null) {
      void this.playAt(t + seconds * 1000);
      return;
    }
    if (this.player.mode === "archive" && t !== null && this.player.seekWithin(t + seconds * 1000)) return;
    this.player.skip(seconds);
  }
}
