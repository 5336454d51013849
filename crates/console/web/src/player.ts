// The video player: hls.js on a <video>, for the live view (low-latency HLS) and for archive
// sessions that start at a chosen time. Times are wall-clock milliseconds throughout: the
// sessions carry EXT-X-PROGRAM-DATE-TIME (DisplayFragmentTimestamp ALWAYS), which maps the
// player's position to when it was recorded.
import Hls from "hls.js/light";
import type { Fragment } from "hls.js/light";

export type Mode = "none" | "live" | "archive";

export class Player {
  readonly box: HTMLElement;
  readonly video: HTMLVideoElement;
  private hls?: Hls;
  mode: Mode = "none";
  /** Called with the wall-clock time being shown, a few times a second. */
  onTime: (ms: number | null) => void = () => {};
  /** Called when playback fails for good, with a message. */
  onError: (message: string) => void = () => {};
  onEnded: () => void = () => {};

  constructor() {
    this.video = document.createElement("video");
    this.video.id = "player";
    this.video.muted = true; // autoplay is allowed muted; the controls unmute
    this.video.playsInline = true;
    this.video.controls = true;
    this.video.preload = "auto";
    this.box = document.createElement("div");
    this.box.className = "player";
    this.box.id = "player-box";
    this.box.dataset.mode = "none";
    this.box.append(this.video);
    this.video.addEventListener("timeupdate", () => this.tick());
    this.video.addEventListener("ended", () => this.onEnded());
  }

  static supported(codec?: string): boolean {
    if (!Hls.isSupported()) return false;
    if (!codec) return true;
    const ms = (window as unknown as { MediaSource?: typeof MediaSource }).MediaSource;
    return !!ms && ms.isTypeSupported(`video/mp4; codecs="${codec}"`);
  }

  private tick(): void {
    const t = this.playingTime();
    this.box.dataset.playingTime = t === null ? "" : String(Math.round(t));
    this.onTime(t);
  }

  /** The wall-clock time of the frame on screen. */
  playingTime(): number | null {
    const d = this.hls?.playingDate;
    return d ? d.getTime() : null;
  }

  stop(): void {
    this.hls?.destroy();
    this.hls = undefined;
    this.video.removeAttribute("src");
    this.video.load();
    this.mode = "none";
    this.box.dataset.mode = "none";
  }

  private attach(url: string, config: Partial<Hls["config"]>, mode: Mode): Hls {
    this.stop();
    const hls = new Hls({ enableWorker: true, ...config });
    this.hls = hls;
    this.mode = mode;
    this.box.dataset.mode = mode;
    this.box.dataset.playingTime = "";
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
        return;
      }
      const detail = data.response?.code ? ` (HTTP ${data.response.code})` : "";
      this.onError(`Playback failed: ${data.details}${detail}`);
    });
    hls.attachMedia(this.video);
    hls.loadSource(url);
    return hls;
  }

  live(url: string): void {
    const hls = this.attach(url, { lowLatencyMode: true, backBufferLength: 30 }, "live");
    hls.on(Hls.Events.MANIFEST_PARSED, () => void this.video.play().catch(() => {}));
  }

  /** Plays an archive session from `at` (wall clock, ms), or from its first frame after. */
  archive(url: string, at: number): void {
    const hls = this.attach(url, { lowLatencyMode: false, maxBufferLength: 20 }, "archive");
    let positioned = false;
    hls.on(Hls.Events.LEVEL_LOADED, (_e, data) => {
      if (positioned) return;
      positioned = true;
      // hls.js has chosen to start at the session's first fragment; seeking now (before any
      // media is buffered) makes it load from `at` instead.
      const pos = positionOf(data.details.fragments, at) ?? 0;
      if (pos > 0.01) this.video.currentTime = pos;
      void this.video.play().catch(() => {});
    });
  }

  /** Seeks within the current archive session; false when `at` is not in it. */
  seekWithin(at: number): boolean {
    if (this.mode !== "archive" || !this.hls) return false;
    const level = this.hls.levels[this.hls.currentLevel >= 0 ? this.hls.currentLevel : 0];
    const frags = level?.details?.fragments;
    if (!frags) return false;
    const pos = positionOf(frags, at, false);
    if (pos === null) return false;
    this.video.currentTime = pos;
    return true;
  }

  skip(seconds: number): void {
    const v = this.video;
    v.currentTime = Math.max(0, v.currentTime + seconds);
  }

  togglePlay(): void {
    if (this.video.paused) void this.video.play();
    else this.video.pause();
  }
}

/** The player position (s) showing wall-clock time `at`: inside the fragment holding it, or the
 * start of the first fragment after it (with `after`). */
function positionOf(frags: Fragment[], at: number, after = true): number | null {
  for (const f of frags) {
    const pdt = f.programDateTime;
    if (pdt === null || pdt === undefined) continue;
    const end = pdt + f.duration * 1000;
    if (at < pdt) return after ? f.start : null;
    if (at < end) return f.start + (at - pdt) / 1000;
  }
  return null;
}
