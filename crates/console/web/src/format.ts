// Numbers and times as people read them.
export function bytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? n.toFixed(0) : n.toFixed(1)} ${units[i]}`;
}

export function rate(bytesPerSecond: number): string {
  if (bytesPerSecond <= 0) return "—";
  const bits = bytesPerSecond * 8;
  if (bits >= 1e6) return `${(bits / 1e6).toFixed(bits >= 1e7 ? 0 : 1)} Mbit/s`;
  return `${(bits / 1e3).toFixed(0)} kbit/s`;
}

export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function retention(hours: number): string {
  if (hours === 0) return "none";
  if (hours % 24 === 0) return `${hours / 24} d`;
  return `${hours} h`;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** 14:22:33 (local time). */
export function clock(ms: number, withMs = false): string {
  const d = new Date(ms);
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return withMs ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/** 2026-12-02 (local date). */
export function day(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export function dateTime(ms: number): string {
  return `${day(ms)} ${clock(ms)}`;
}

/** Local midnight of a YYYY-MM-DD day. */
export function dayStart(isoDay: string): number {
  const [y, m, d] = isoDay.split("-").map(Number);
  return new Date(y, (m ?? 1) - 1, d ?? 1).getTime();
}

/** The next local midnight (days have 23 or 25 hours around DST changes). */
export function nextDay(isoDay: string, by = 1): string {
  const [y, m, d] = isoDay.split("-").map(Number);
  return day(new Date(y, (m ?? 1) - 1, (d ?? 1) + by).getTime());
}

export function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Parses HH:MM[:SS] on a given day (local). */
export function parseClock(text: string, isoDay: string): number | null {
  const m = /^\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?\s*$/.exec(text);
  if (!m) return null;
  const [y, mo, d] = isoDay.split("-").map(Number);
  const ms = m[4] ? Number(m[4].padEnd(3, "0")) : 0;
  return new Date(y, mo - 1, d, Number(m[1]), Number(m[2]), Number(m[3] ?? 0), ms).getTime();
}
