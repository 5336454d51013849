// AWS Signature Version 4 in the browser, for the one request the console signs: its sign-in
// (`POST /console/api/login`). The secret key is used here and then dropped: it is never sent,
// never stored. @noble/hashes is used rather than WebCrypto because WebCrypto exists only in
// secure contexts, and a console on http://camera-box.local:4567 is not one.
import { sha256 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SignInput {
  method: string;
  host: string;
  path: string; // already URI-encoded as sent
  body: string;
  region: string;
  service: string;
  date?: Date;
  headers?: Record<string, string>;
}

/** `20261202T142233Z` */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

/** The headers to send: the given ones plus Host (for signing only), X-Amz-Date,
 * X-Amz-Content-Sha256 and Authorization. */
export function sign(input: SignInput, creds: Credentials): Record<string, string> {
  const date = amzDate(input.date ?? new Date());
  const day = date.slice(0, 8);
  const bodyHash = bytesToHex(sha256(utf8ToBytes(input.body)));
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v.trim();
  headers["host"] = input.host;
  headers["x-amz-date"] = date;
  headers["x-amz-content-sha256"] = bodyHash;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n]}\n`).join("");
  const signedHeaders = names.join(";");
  const canonicalRequest = [input.method, input.path, "", canonicalHeaders, signedHeaders, bodyHash].join("\n");
  const scope = `${day}/${input.region}/${input.service}/aws4_request`;
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    bytesToHex(sha256(utf8ToBytes(canonicalRequest))),
  ].join("\n");
  let key = hmac(sha256, utf8ToBytes("AWS4" + creds.secretAccessKey), utf8ToBytes(day));
  for (const part of [input.region, input.service, "aws4_request"]) key = hmac(sha256, key, utf8ToBytes(part));
  const signature = bytesToHex(hmac(sha256, key, utf8ToBytes(stringToSign)));
  key.fill(0);
  const out: Record<string, string> = { ...headers };
  delete out["host"]; // the browser sends Host itself
  out["authorization"] =
    `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return out;
}
