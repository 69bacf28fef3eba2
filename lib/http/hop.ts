/**
 * Header rewriting between the two sides of an HTTP proxy: hop-by-hop fields (RFC 9110 §7.6.1,
 * RFC 9112 §9.6), Via (RFC 9110 §7.6.3) and the de-facto X-Forwarded-For/-Proto/-Host (SPEC §3).
 * Pure functions over Header lists; inputs are never mutated.
 *
 * As in Go's httputil.ReverseProxy, the Connection tokens are honoured first, then the fixed
 * list below is removed, on requests and responses alike; the Upgrade value must be read (see
 * RequestHead.upgrade) before stripping.
 *
 * Choices:
 * - Transfer-Encoding and Trailer are kept: we relay bodies unchanged (chunked stays chunked,
 *   trailers included), so the next hop needs the framing field that matches the bytes. (The
 *   one exception, de-chunking for an HTTP/1.0 client, is clientResponseHead's to handle.)
 * - A Connection token can never remove Content-Length, Transfer-Encoding or Host: the body
 *   is relayed as received, so dropping its framing field would let the rest of the body be read
 *   as the next request ("Connection: Content-Length" smuggling).
 * - Forwarding fields sent by the client are not trusted (SPEC §3): every field named
 *   `X-Forwarded-*` (Port, Prefix, Ssl, Server, ... as well as For/Proto/Host; frameworks read
 *   them all) and `Forwarded` (RFC 7239) is removed, and ours are added; never appended to.
 */
import { unmapIPv4 } from "../address.ts";
import { fieldNameIs, type Header } from "../protocol/http1.ts";
import { listTokens } from "../protocol/http1-framing.ts";

/** The name this proxy gives itself in Via (RFC 9110 §7.6.3). */
export const VIA_PSEUDONYM = "sidecar-proxy";

/** Fields that describe one connection only, lower-case (RFC 9110 §7.6.1 and predecessors). */
export const HOP_BY_HOP: readonly string[] = Object.freeze([
  "connection", // RFC 9110 §7.6.1: the connection options themselves
  "proxy-connection", // non-standard (old Netscape clients); same meaning as Connection
  "keep-alive", // RFC 2068 §19.7.1: parameters of this connection's persistence
  "proxy-authenticate", // RFC 9110 §11.7.1: a challenge for the next client on the chain, i.e. us
  "proxy-authorization", // RFC 9110 §11.7.2: credentials for this proxy, never for the origin
  "te", // RFC 9110 §10.1.4: hop-by-hop, what this client accepts as transfer codings
  "upgrade", // RFC 9110 §7.8: per connection; kept only when relaying an upgrade (keepUpgrade)
]);

const CONNECTION_UPGRADE: Header = Object.freeze({ name: "Connection", value: "Upgrade" });

/** Never removed by a Connection token: the relayed body and routing depend on them. */
const PROTECTED = new Set(["content-length", "transfer-encoding", "host"]);
const HOP_SET = new Set(HOP_BY_HOP);

/** HOP_BY_HOP indexed by name length, so most fields cost one array read. */
const HOP_BY_LENGTH: string[][] = [];
for (const hop of HOP_BY_HOP) (HOP_BY_LENGTH[hop.length] ??= []).push(hop);

function isFixedHop(name: string): boolean {
  const candidates = HOP_BY_LENGTH[name.length];
  if (candidates === undefined) return false;
  for (let i = 0; i < candidates.length; i++) if (fieldNameIs(name, candidates[i]!)) return true;
  return false;
}

/**
 * Removes hop-by-hop fields. With keepUpgrade (relaying a WebSocket or other upgrade), the
 * Upgrade field stays and a single `Connection: Upgrade` replaces the client's Connection lines,
 * which the next hop needs to see the upgrade at all; only when Connection names `upgrade`,
 * except with "always" (a 101, whose Upgrade field says what the connection now is: RFC 9110
 * §7.8 requires it, and `Connection: Upgrade` is added when the origin left it out).
 */
export function stripHopByHop(headers: readonly Header[], opts: { keepUpgrade: boolean | "always" }): readonly Header[] {
  // Copy on write: Connection is on the fixed list, so a head without a fixed field (the
  // common case) has nothing to remove and is returned as it is.
  let anyHop = false;
  for (let i = 0; i < headers.length && !anyHop; i++) anyHop = isFixedHop(headers[i]!.name);
  if (!anyHop) return headers;
  // Tokens beyond the fixed list; usually none ("Connection: keep-alive" names a listed field).
  let named: Set<string> | null = null;
  let upgradeToken = false;
  for (const h of headers) {
    // Proxy-Connection (old clients' Connection) names fields as Connection does; only
    // Connection can carry the upgrade.
    const connection = fieldNameIs(h.name, "connection");
    if (!connection && !fieldNameIs(h.name, "proxy-connection")) continue;
    for (const t of listTokens(h.value)) {
      if (t === "upgrade") upgradeToken ||= connection;
      else if (!PROTECTED.has(t) && !HOP_SET.has(t)) (named ??= new Set()).add(t);
    }
  }
  const keepUpgrade = opts.keepUpgrade === "always" || (opts.keepUpgrade && upgradeToken);
  const out: Header[] = [];
  let connectionKept = false;
  for (const h of headers) {
    if (keepUpgrade && fieldNameIs(h.name, "upgrade")) out.push(h);
    else if (keepUpgrade && fieldNameIs(h.name, "connection")) {
      if (!connectionKept) out.push({ name: h.name, value: "Upgrade" });
      connectionKept = true;
    } else if (!isFixedHop(h.name) && (named === null || !named.has(h.name.toLowerCase()))) out.push(h);
  }
  if (keepUpgrade && !connectionKept) out.push(CONNECTION_UPGRADE);
  return out;
}

/**
 * Adds this proxy to Via ("1.1 pseudonym"), appended to the last existing Via line if any.
 * Always a new array, which the caller may extend.
 */
export function withVia(headers: readonly Header[], version: "1.0" | "1.1", pseudonym: string): Header[] {
  const via = viaField(version, pseudonym);
  const out = headers.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    const h = out[i]!;
    if (!fieldNameIs(h.name, "via")) continue;
    out[i] = { name: h.name, value: h.value === "" ? via.value : `${h.value}, ${via.value}` };
    return out;
  }
  out.push(via);
  return out;
}

// The Via field of a head that has none, built once per version and pseudonym.
const VIA_FIELDS: Partial<Record<"1.0" | "1.1", { readonly pseudonym: string; readonly field: Header }>> = {};
/** This proxy's Via field for a message received in `version` (also written as bytes by http-plain.ts). */
export function viaField(version: "1.0" | "1.1", pseudonym: string): Header {
  const cached = VIA_FIELDS[version];
  if (cached !== undefined && cached.pseudonym === pseudonym) return cached.field;
  const field: Header = Object.freeze({ name: "Via", value: `${version} ${pseudonym}` });
  VIA_FIELDS[version] = { pseudonym, field };
  return field;
}

const FORWARDED_PROTO: Readonly<Record<"http" | "https", Header>> = Object.freeze({
  http: Object.freeze({ name: "X-Forwarded-Proto", value: "http" }),
  https: Object.freeze({ name: "X-Forwarded-Proto", value: "https" }),
});

/** The names a client's forwarding fields have: this prefix (any case), or exactly "forwarded". */
export const X_FORWARDED_PREFIX = "x-forwarded-";

/**
 * Forwarded, or a name that starts with X-Forwarded- (ASCII case-insensitive, RFC 9110 §5.1),
 * with `_` for either `-` too: CGI, WSGI and PHP map `X_Forwarded_For` and `X-Forwarded-For`
 * to the same HTTP_X_FORWARDED_FOR, and some join the two values, client's first (nginx drops
 * names with `_` by default for this reason).
 */
function isForwardingField(name: string): boolean {
  if (name.length < X_FORWARDED_PREFIX.length) return fieldNameIs(name, "forwarded");
  for (let i = 0; i < X_FORWARDED_PREFIX.length; i++) {
    if (!forwardingNameOctet(name.charCodeAt(i), X_FORWARDED_PREFIX.charCodeAt(i))) return false;
  }
  return true;
}

const DASH = 0x2d;
const UNDERSCORE = 0x5f;

/** Octet `c` of a name against octet `p` of X_FORWARDED_PREFIX: case-insensitive, `_` as `-`. */
export function forwardingNameOctet(c: number, p: number): boolean {
  return p === DASH ? c === DASH || c === UNDERSCORE : (c | 0x20) === p;
}

/**
 * Replaces every client-sent forwarding field (X-Forwarded-*, Forwarded) with what this proxy
 * saw: X-Forwarded-For, -Proto and -Host. A new array.
 */
export function withForwarded(
  headers: readonly Header[],
  info: { readonly clientIp: string; readonly proto: "http" | "https"; readonly host: string | null },
): Header[] {
  const out: Header[] = [];
  for (const h of headers) if (!isForwardingField(h.name)) out.push(h);
  out.push({ name: "X-Forwarded-For", value: displayIp(info.clientIp) });
  out.push(FORWARDED_PROTO[info.proto]);
  if (info.host !== null) out.push({ name: "X-Forwarded-Host", value: info.host });
  return out;
}

/** A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; shown as a.b.c.d. */
export const displayIp = unmapIPv4;

/** The first value of a field, case-insensitive (list fields: split the value yourself). */
export function getHeader(headers: readonly Header[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const h of headers) if (fieldNameIs(h.name, lower)) return h.value;
  return undefined;
}

/** Sets one field: replaces the first occurrence in place, drops the others, or appends. */
export function setHeader(headers: readonly Header[], name: string, value: string): Header[] {
  const lower = name.toLowerCase();
  const out: Header[] = [];
  let set = false;
  for (const h of headers) {
    if (!fieldNameIs(h.name, lower)) out.push(h);
    else if (!set) {
      out.push({ name: h.name, value });
      set = true;
    }
  }
  if (!set) out.push({ name, value });
  return out;
}
