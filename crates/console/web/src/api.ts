// The console's calls to the server: its sign-in, the KVS operations (run with the session's
// key by /console/api/kvs/...), and the console-only reads.
import { sign, type Credentials } from "./sigv4";

export class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
  /** The session is gone: sign in again. */
  get signedOut(): boolean {
    return ["MissingAuthenticationTokenException", "UnrecognizedClientException"].includes(this.type);
  }
}

export interface ServerInfo {
  Region: string;
  Service: string;
  Version: string;
  AuthenticationRequired: boolean;
  SessionHours: number;
}

export interface SessionInfo {
  AccessKeyId: string;
  ExpiresAt: number;
  Region: string;
}

export interface TrackSummary {
  Number: number;
  Kind: "video" | "audio";
  Codec: string;
  CodecName: string;
  Width?: number;
  Height?: number;
}

export interface StreamSummary {
  StreamName: string;
  StreamARN: string;
  Status: string;
  MediaType?: string;
  DeviceName?: string;
  DataRetentionInHours: number;
  CreationTime: number;
  Version: string;
  Tags: Record<string, string>;
  StorageBytes: number;
  Fragments: number;
  IngestBytesPerSecond: number;
  IngestFragmentsPerMinute: number;
  LastFragment?: { FragmentNumber: string; ServerTimestamp: number; ProducerTimestamp: number; DurationMs: number };
  Tracks: TrackSummary[];
  LowLatencyHls: boolean;
}

export interface Span {
  Start: number;
  End: number;
  Fragments: number;
  Bytes: number;
}

/** Called when a request finds the session gone. */
let onSignedOut: () => void = () => {};
export function setSignedOutHandler(f: () => void): void {
  onSignedOut = f;
}

async function check(resp: Response): Promise<Response> {
  if (resp.ok) return resp;
  let type = `HTTP ${resp.status}`;
  let message = resp.statusText;
  try {
    const body = await resp.json();
    type = String(body.__type ?? resp.headers.get("x-amzn-ErrorType") ?? type).split("#").pop()!;
    message = String(body.Message ?? body.message ?? message);
  } catch {
    /* not JSON */
  }
  const e = new ApiError(type, message, resp.status);
  if (e.signedOut) onSignedOut();
  throw e;
}

async function post<T>(path: string, body: unknown): Promise<T> {
  const resp = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "x-vigil-console": "1" },
    body: JSON.stringify(body ?? {}),
    credentials: "same-origin",
  });
  return (await check(resp)).json();
}

async function get<T>(path: string): Promise<T> {
  const resp = await fetch(path, { credentials: "same-origin", headers: { "x-vigil-console": "1" } });
  return (await check(resp)).json();
}

export function info(): Promise<ServerInfo> {
  return get("/console/api/info");
}

export function session(): Promise<SessionInfo> {
  return get("/console/api/session");
}

/** Signs in: the request is signed here with SigV4; the secret is not sent. */
export async function login(creds: Credentials, server: ServerInfo): Promise<SessionInfo> {
  const path = "/console/api/login";
  const body = "{}";
  const headers = sign(
    {
      method: "POST",
      host: location.host,
      path,
      body,
      region: server.Region,
      service: server.Service,
      headers: { "content-type": "application/json" },
    },
    creds,
  );
  const resp = await fetch(path, { method: "POST", headers, body, credentials: "same-origin" });
  return (await check(resp)).json();
}

export function logout(): Promise<unknown> {
  return post("/console/api/logout", {});
}

/** A KVS operation by its path name (`listStreams`), with the session's key. */
export function kvs<T = Record<string, unknown>>(op: string, input: unknown): Promise<T> {
  return post(`/console/api/kvs/${op}`, input);
}

export async function streams(): Promise<{ Streams: StreamSummary[]; Now: number }> {
  return get("/console/api/streams");
}

export async function timeline(stream: string, start: number, end: number): Promise<Span[]> {
  const q = new URLSearchParams({ stream, start: String(Math.floor(start)), end: String(Math.ceil(end)) });
  const r = await get<{ Spans: Span[] }>(`/console/api/timeline?${q}`);
  return r.Spans;
}

export async function liveUrl(stream: string): Promise<string> {
  const r = await post<{ HLSStreamingSessionURL: string }>("/console/api/live", { StreamName: stream });
  return r.HLSStreamingSessionURL;
}

export async function archiveUrl(stream: string, start: number, end: number): Promise<string> {
  const r = await kvs<{ HLSStreamingSessionURL: string }>("getHLSStreamingSessionURL", {
    StreamName: stream,
    PlaybackMode: "ON_DEMAND",
    ContainerFormat: "FRAGMENTED_MP4",
    DisplayFragmentTimestamp: "ALWAYS",
    HLSFragmentSelector: {
      FragmentSelectorType: "PRODUCER_TIMESTAMP",
      TimestampRange: { StartTimestamp: start / 1000, EndTimestamp: end / 1000 },
    },
    MaxMediaPlaylistFragmentResults: 5000,
    Expires: 43200,
  });
  return r.HLSStreamingSessionURL;
}

export function clipUrl(stream: string, start: number, end: number): string {
  const q = new URLSearchParams({ stream, start: String(Math.floor(start)), end: String(Math.ceil(end)) });
  return `/console/api/clip?${q}`;
}

export interface Image {
  TimeStamp: number;
  Error?: string;
  ImageContent?: string;
}

export async function images(stream: string, start: number, end: number, count: number, width = 160): Promise<Image[]> {
  const interval = Math.max(200, Math.floor((end - start) / Math.max(1, count)));
  const r = await kvs<{ Images: Image[] }>("getImages", {
    StreamName: stream,
    ImageSelectorType: "PRODUCER_TIMESTAMP",
    StartTimestamp: start / 1000,
    EndTimestamp: end / 1000,
    SamplingInterval: interval,
    Format: "JPEG",
    WidthPixels: width,
    MaxResults: count,
  });
  return r.Images ?? [];
}
