/**
 * Dialling an upstream: resolve the name ourselves, check each resolved address against the
 * destination policy (so a name that resolves to a denied address — DNS rebinding — is refused
 * on the address actually dialled), then try the addresses in the resolver's order within one
 * connect deadline. On forward listeners each address gets its share of what is left of it
 * (DialOptions.shareDeadline), so an address that drops SYNs does not use up the whole deadline.
 * IPv6 and IPv4 results are both tried. A name that ends in a number
 * ("0177.0.0.1", "0x7f.1": address.ts endsInNumber) is refused, never sent to DNS; so is a name
 * under `.invalid`, which RFC 6761 §6.4 says resolver libraries answer negatively themselves.
 */
import { MAX_PORT, dialledAddress, endsInNumber, hostPort, isIP } from "./address.ts";
import { ProxyError, asProxyError, lookupFailure } from "./errors.ts";
import { ADDRESS_CONNECT_MIN_MS } from "./limits.ts";
import type { AbandonedOwner, Conn, Runtime } from "./runtime/types.ts";
import { nowMs } from "./clock.ts";

export interface DialTarget {
  readonly host: string;
  readonly port: number;
}

export interface DialOptions {
  readonly timeoutMs: number;
  /** Returns false for an address the policy denies. */
  readonly allowAddress?: (address: string) => boolean;
  /** Charged with the connects that outlive their deadline (ConnectOptions.owner). */
  readonly owner?: AbandonedOwner;
  /**
   * Forward listeners: a name's addresses get a share of the deadline each (shareMs), as Go's
   * net.Dialer and curl share theirs: a destination's name may list a dead address. Only until
   * one share runs out (its connect is then abandoned under Bun, holding a socket ~2 min), so a
   * dial abandons at most two connects (one per dial before). Reverse listeners dial their own
   * workload, where a connect that hangs means a full accept queue (overload) rather than a dead
   * address: its first address keeps all of the deadline, as before (`localhost` is 127.0.0.1
   * and ::1, and a workload on one of them refuses the other at once).
   */
  readonly shareDeadline?: boolean;
}

/** Rank of the error kinds when every address failed: the most telling one is reported. */
const KIND_RANK: Record<string, number> = {
  connectRefused: 6,
  connectTimeout: 5,
  hostUnreachable: 4,
  netUnreachable: 3,
  connectFailed: 2,
  denied: 1,
};

/**
 * Calls `done` once, never before dial returns, with the open Conn or the most telling
 * ProxyError. Callback-driven (an IP literal, the common case, is one runtime connect and no
 * promise); a name is resolved first, within the same deadline.
 */
export function dial(runtime: Runtime, target: DialTarget, options: DialOptions, done: (result: Conn | ProxyError) => void): void {
  const deadlineMs = nowMs() + options.timeoutMs;
  const host = stripBrackets(target.host);
  const literal = isIP(host) !== 0;
  const refused = refusal(target, host, literal);
  if (refused !== null) return queueMicrotask(() => done(refused)); // `done` never runs before dial returns
  if (literal) return new Attempts(runtime, target, [host], deadlineMs, options, done).from(0);
  const name = lookupName(host);
  const lookup = name === LOCALHOST ? resolveLocalhost(runtime) : runtime.resolve(name);
  withDeadline(lookup, deadlineMs, target, options.timeoutMs).then(
    (addresses) => new Attempts(runtime, target, addresses, deadlineMs, options, done).from(0),
    (err: unknown) => done(asProxyError(err)),
  );
}

const LOCALHOST = "localhost";
/** What `localhost` names (RFC 6761 §6.3); the configuration's self-loop check uses it too. */
export const LOOPBACKS: readonly string[] = ["127.0.0.1", "::1"];

/**
 * `localhost` is both loopback addresses (RFC 6761 §6.3: "always return the IP loopback
 * address"; curl does the same): the hosts file's order first, then whichever of 127.0.0.1 and
 * ::1 it left out (a hosts file with only `127.0.0.1 localhost` made a destination listening on
 * ::1 alone unreachable by name), or both when there is no hosts file (a distroless root).
 */
async function resolveLocalhost(runtime: Runtime): Promise<readonly string[]> {
  let listed: readonly string[];
  try {
    listed = await runtime.resolve(LOCALHOST);
  } catch {
    return LOOPBACKS;
  }
  const missing = LOOPBACKS.filter((a) => !listed.includes(a));
  return missing.length === 0 ? listed : [...listed, ...missing];
}

/** What is refused before any lookup or connect, or null. */
function refusal(target: DialTarget, host: string, literal: boolean): ProxyError | null {
  // SOCKS can name DST.PORT 0 (HTTP's parsers refuse it): malformed, whatever the runtime's connect would say.
  if (target.port < 1 || target.port > MAX_PORT) return new ProxyError("protocol", `port ${target.port} is not a destination port (1-${MAX_PORT})`);
  if (literal) return null;
  if (endsInNumber(host)) {
    return new ProxyError("protocol", `${target.host} is an IPv4 address in a non-standard form (octal, hex or fewer than four parts), not a host name: write it as a.b.c.d`);
  }
  if (!isHostName(host)) return new ProxyError("protocol", `${target.host} is not a host name (dot-separated labels of 1-63 letters, digits, "-" or "_"; 253 octets at most)`);
  if (isInvalidName(host)) return new ProxyError("dnsFailed", `${target.host} does not resolve (RFC 6761: .invalid names never do; not sent to DNS)`);
  return null;
}

const LABEL = /^[A-Za-z0-9_-]{1,63}$/;

/**
 * A name the resolver can be asked: labels of 1-63 letters, digits, `-` or `_` (RFC 1035 §2.3.4
 * lengths; `_` as in service names), one trailing dot allowed, 253 octets without it. Anything
 * else (`a..b`, `.x`, `a:b` that is no IPv6 literal, a 64-octet label) is malformed, not sent to
 * DNS (it answered "does not resolve" after a query before).
 */
function isHostName(host: string): boolean {
  const name = withoutRootDot(host);
  if (name.length === 0 || name.length > 253) return false;
  for (const label of name.split(".")) if (!LABEL.test(label)) return false;
  return true;
}

/**
 * RFC 6761 §6.3: `localhost`, `localhost.` and names under `.localhost` are the loopback host,
 * never a DNS question: they are looked up as `localhost` (resolveLocalhost).
 */
function lookupName(host: string): string {
  return isLocalhostName(host) ? LOCALHOST : host;
}

/** `localhost` or a name under `.localhost`, any case, with or without the root dot. */
export function isLocalhostName(host: string): boolean {
  const name = withoutRootDot(host).toLowerCase();
  return name === LOCALHOST || name.endsWith(".localhost");
}

/**
 * One dial's addresses, tried in order, one connect at a time, until one opens or the deadline
 * passes. When every address fails, the answer is the most telling failure's kind (KIND_RANK);
 * where more than one address was tried, its detail lists what became of each, in order, so a
 * share that ran out is not hidden behind the refusal or timeout that came after it.
 */
class Attempts {
  private failure: ProxyError | null = null;
  /** What became of each address, for a name that has several (null for one: its own error says it). */
  private readonly notes: string[] | null;
  /** One share per dial (DialOptions.shareDeadline), then the next address gets all that is left. */
  private mayShare: boolean;

  constructor(
    private readonly runtime: Runtime,
    private readonly target: DialTarget,
    private readonly addresses: readonly string[],
    private readonly deadlineMs: number,
    private readonly options: DialOptions,
    private readonly done: (result: Conn | ProxyError) => void,
  ) {
    this.notes = addresses.length > 1 ? [] : null;
    this.mayShare = options.shareDeadline === true;
  }

  /** Tries addresses[i..]. */
  from(i: number): void {
    const { addresses, options, target } = this;
    for (; i < addresses.length; i++) {
      const address = dialledAddress(addresses[i]!);
      if (options.allowAddress && !options.allowAddress(address)) {
        this.failed(new ProxyError("denied", `${target.host} -> ${address} is denied by policy`), `${hostPort(address, target.port)} is denied by policy`);
        continue;
      }
      const remainingMs = this.deadlineMs - nowMs();
      if (remainingMs <= 0) {
        const untried = addresses.length - i;
        const which = untried > 1 ? `${hostPort(address, target.port)} and ${untried - 1} more` : hostPort(address, target.port);
        this.failed(timeoutError(target, options.timeoutMs), `${which} not tried: the ${options.timeoutMs} ms connect timeout had passed`);
        break;
      }
      const next = i + 1;
      const shared = this.mayShare && next < addresses.length;
      const timeoutMs = shared ? shareMs(remainingMs, allowedFrom(addresses, i, options)) : remainingMs;
      this.runtime.connect({ hostname: address, port: target.port, timeoutMs, owner: options.owner }, (result) => {
        if (!(result instanceof ProxyError)) return this.done(result);
        // The proxy's own limit (abandoned connects, lib/runtime/pending-connect.ts): the next address would be refused too.
        if (result.kind === "limitExceeded") return this.done(result);
        const noted = this.notes && note(result, address, target.port, timeoutMs, shared && timeoutMs < remainingMs, options.timeoutMs);
        if (result.kind === "connectTimeout") {
          // Under Bun a connect past its time is abandoned: its socket stays until the kernel
          // gives up (~2 min, pending-connect.ts), whatever comes of the dial. One share per
          // dial, then: after a share has run out, the next address gets all that is left.
          this.mayShare = false;
          // Named by the configured limit, not by what was left of it when this connect began.
          this.failed(timeoutError(target, options.timeoutMs), noted);
        } else this.failed(result, noted);
        this.from(next);
      });
      return;
    }
    this.finish();
  }

  private failed(err: ProxyError, noted: string | null): void {
    this.failure = pick(this.failure, err);
    if (noted !== null) this.notes?.push(noted);
  }

  private finish(): void {
    const picked = this.failure ?? lookupFailure(this.target.host);
    const notes = this.notes;
    const err = notes !== null && notes.length > 1 ? new ProxyError(picked.kind, `${hostPort(this.target.host, this.target.port)}: ${notes.join("; ")}`, { cause: picked.cause }) : picked;
    // Every address was refused by policy before any connect: still answer asynchronously, as the
    // callers' handshake code expects (it may be in the middle of parsing).
    queueMicrotask(() => this.done(err));
  }
}

/**
 * What became of one of several addresses, for the dial's detail: a timeout names the time its
 * connect had (`connectMs`: its share, or what was left of the deadline); any other failure is
 * the runtime's, with the address in front where its message does not begin with it.
 */
function note(err: ProxyError, address: string, port: number, connectMs: number, share: boolean, timeoutMs: number): string {
  const at = hostPort(address, port);
  if (err.kind === "connectTimeout") {
    const ms = Math.round(connectMs);
    if (share) return `${at} not connected within its ${ms} ms share of the ${timeoutMs} ms connect timeout`;
    return ms < timeoutMs ? `${at} not connected within the ${ms} ms left of the ${timeoutMs} ms connect timeout` : `${at} not connected within the ${timeoutMs} ms connect timeout`;
  }
  return err.message.startsWith(at) ? err.message : `${at}: ${err.message}`;
}

/**
 * An address's share of what is left of the connect deadline when `left` addresses (this one
 * included) may still be tried: an equal part, but at least ADDRESS_CONNECT_MIN_MS (or all that
 * is left, if less), as Go's net.Dialer shares its deadline (partialDeadline).
 */
export function shareMs(remainingMs: number, left: number): number {
  const share = remainingMs / left;
  return share >= ADDRESS_CONNECT_MIN_MS ? share : Math.min(remainingMs, ADDRESS_CONNECT_MIN_MS);
}

/** How many of addresses[i..] the policy lets us dial (addresses[i] is one of them). */
function allowedFrom(addresses: readonly string[], i: number, options: DialOptions): number {
  if (!options.allowAddress) return addresses.length - i;
  let n = 1;
  for (let j = i + 1; j < addresses.length; j++) if (options.allowAddress(dialledAddress(addresses[j]!))) n++;
  return n;
}

function pick(previous: ProxyError | null, next: ProxyError): ProxyError {
  if (!previous) return next;
  return (KIND_RANK[next.kind] ?? 0) > (KIND_RANK[previous.kind] ?? 0) ? next : previous;
}

function timeoutError(target: DialTarget, timeoutMs: number): ProxyError {
  return new ProxyError("connectTimeout", `${hostPort(target.host, target.port)} not connected within ${timeoutMs} ms`);
}

function withDeadline<T>(promise: Promise<T>, deadlineMs: number, target: DialTarget, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeoutError(target, timeoutMs)), Math.max(0, deadlineMs - nowMs()));
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(asProxyError(err));
      },
    );
  });
}

/** RFC 6761 §6.4: `invalid` and every name under it, with or without the root dot. */
function isInvalidName(host: string): boolean {
  const name = withoutRootDot(host).toLowerCase();
  return name === "invalid" || name.endsWith(".invalid");
}

/** A name without its one trailing dot (the root: `localhost.` is `localhost`). */
function withoutRootDot(host: string): string {
  return host.endsWith(".") ? host.slice(0, -1) : host;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
