/**
 * The CONNECT head shortcut (a HeadShortcut, http1.ts): the head a forward proxy's tunnel starts
 * from, read on bytes. A CONNECT head only needs its authority and the checks every head gets;
 * the general build decodes the whole head, makes two strings and an object per field, and a
 * facts object, for nothing. Paired A/B on CONNECT rr (bench/RESULTS.md): skipping the parse
 * altogether bounds the gain at 3.5-5.7 us per connection; this shortcut, which still runs every
 * check, took 0.8-5.0 us off (1.8 on average, 7 of 8 rounds).
 *
 * It takes a head the general build would accept, with the same result, and declines (null, the
 * general build then runs) anything it does not read the same way for certain:
 * - the method must be exactly CONNECT (case-sensitive, RFC 9110 §9.1);
 * - Content-Length, Transfer-Encoding, Connection, Expect and Upgrade lines are declined (they
 *   decide framing and keep-alive, and can be errors: the general path judges them);
 * - one Host line, valid (isValidHostField), or none on HTTP/1.0: anything else is declined.
 * The request-line and field-line checks are the general ones (scanRequestLine, scanFieldLines),
 * run first as there, so an error thrown here is the error the general build throws.
 * tests/http-plain.test.ts compares both on generated and mutated heads.
 */
import { NO_BODY } from "./http1-framing.ts";
import type { BodyFraming, Header, HeadScan, HeadShortcut, RequestHead } from "./http1.ts";
import { HTAB, latin1, scanFieldLines, SP } from "./http1-scan.ts";
import { type Authority, isValidHostField, parseTarget, scanRequestLine } from "./http1-target.ts";

const CONNECT = [0x43, 0x4f, 0x4e, 0x4e, 0x45, 0x43, 0x54]; // "CONNECT"
const COLON = 0x3a;
const LF = 0x0a;
const FOLD = 0x20; // ASCII letters: OR-ing 0x20 lower-cases them

/** Field names the shortcut looks at, lower-case, by length. */
const HOST = "host";
const DECLINED = ["content-length", "transfer-encoding", "connection", "expect", "upgrade"];
const DECLINED_LENGTHS = new Set(DECLINED.map((n) => n.length));

/** buf[s, e) equals the lower-case ASCII `name`, in any case. */
function nameIs(buf: Uint8Array, s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const c = buf[s + i]!;
    if ((c >= 0x41 && c <= 0x5a ? c | FOLD : c) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * A CONNECT head read by the shortcut. Its fields are the general build's for such a head;
 * `headers`, which the tunnel does not read, is made on first use from the head's bytes.
 */
export class ConnectHead implements RequestHead {
  readonly method = "CONNECT";
  readonly form = "authority";
  readonly url = undefined;
  readonly framing: BodyFraming = NO_BODY;
  readonly expectContinue = false;
  readonly upgrade = null;
  readonly keepAlive: boolean;
  #headers: Header[] | null = null;

  /** buf[fieldsStart, end) are the field lines and the final CRLF. */
  constructor(
    readonly target: string,
    readonly version: "1.0" | "1.1",
    readonly authority: Authority,
    private readonly buf: Uint8Array,
    private readonly fieldsStart: number,
    private readonly end: number,
  ) {
    // RFC 9112 §9.3 with no Connection line (keepAliveOf): 1.1 persists, 1.0 does not.
    this.keepAlive = version === "1.1";
  }

  get headers(): Header[] {
    return (this.#headers ??= fieldLines(this.buf, this.fieldsStart, this.end));
  }
}

/** Field lines already checked by scanFieldLines: name, then the value without its OWS. */
function fieldLines(buf: Uint8Array, start: number, end: number): Header[] {
  const out: Header[] = [];
  for (let s = start; s < end - 2; ) {
    const lf = buf.indexOf(LF, s);
    let colon = s;
    while (buf[colon] !== COLON) colon++;
    let vs = colon + 1;
    let ve = lf - 1;
    while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    out.push({ name: latin1(buf, s, colon), value: latin1(buf, vs, ve) });
    s = lf + 1;
  }
  return out;
}

export const CONNECT_HEAD: HeadShortcut<RequestHead> = {
  take(buf: Uint8Array, scan: HeadScan, end: number): RequestHead | null {
    const s = scan.startLine;
    const line = scanRequestLine(buf, s, scan.startLineEnd - 2);
    if (line.methodEnd - s !== CONNECT.length) return null;
    for (let i = 0; i < CONNECT.length; i++) if (buf[s + i] !== CONNECT[i]) return null;
    const { version, targetStart, targetEnd } = line;
    const spans = scanFieldLines(buf, scan.startLineEnd, scan.fieldEnds, "protocol", scan.spans);
    let host = -1;
    for (let j = 0; j < spans.length; j += 4) {
      const ns = spans[j]!;
      const ne = spans[j + 1]!;
      if (nameIs(buf, ns, ne, HOST)) {
        if (host >= 0) return null; // more than one: the general build's 400
        host = j;
      } else if (DECLINED_LENGTHS.has(ne - ns)) {
        for (const name of DECLINED) if (nameIs(buf, ns, ne, name)) return null;
      }
    }
    if (host < 0 ? version === "1.1" : !isValidHostField(latin1(buf, spans[host + 2]!, spans[host + 3]!))) return null;
    const target = latin1(buf, targetStart, targetEnd);
    let authority: Authority | undefined;
    try {
      authority = parseTarget("CONNECT", target).authority;
    } catch {
      return null; // the general build throws it
    }
    if (authority === undefined) return null;
    return new ConnectHead(target, version, authority, buf, scan.startLineEnd, end);
  },
};
