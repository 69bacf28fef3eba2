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
  if (literal) return tryAddresses(runtime, target, [host], 0, deadlineMs, options, null, done);
  const name = lookupName(host);
  const lookup = name === LOCALHOST ? resolveLocalhost(runtime) : runtime.resolve(name);
  withDeadline(lookup, deadlineMs, target, options.timeoutMs).then(
    (addresses) => tryAddresses(runtime, target, addresses, 0, deadlineMs, options, null, done),
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

/** Tries addresses[i..] in order, one connect at a time, until one opens or the deadline passes. */
function tryAddresses(
  runtime: Runtime,
  target: DialTarget,
  addresses: readonly string[],
  i: number,
  deadlineMs: number,
  options: DialOptions,
  failure: ProxyError | null,
  done: (result: Conn | ProxyError) => void,
  mayShare = options.shareDeadline === true,
): void {
  for (; i < addresses.length; i++) {
    const address = dialledAddress(addresses[i]!);
    if (options.allowAddress && !options.allowAddress(address)) {
      failure = pick(failure, new ProxyError("denied", `${target.host} -> ${address} is denied by policy`));
      continue;
    }
    const remainingMs = deadlineMs - nowMs();
    if (remainingMs <= 0) {
      failure = pick(failure, timeoutError(target, options.timeoutMs));
      break;
    }
    const next = i + 1;
    const failed = failure;
    const shared = mayShare && next < addresses.length;
    const timeoutMs = shared ? shareMs(remainingMs, allowedFrom(addresses, i, options)) : remainingMs;
    runtime.connect({ hostname: address, port: target.port, timeoutMs, owner: options.owner }, (result) => {
      if (!(result instanceof ProxyError)) return done(result);
      // The proxy's own limit (abandoned connects, lib/runtime/pending-connect.ts): the next address would be refused too.
      if (result.kind === "limitExceeded") return done(result);
      if (result.kind !== "connectTimeout") return tryAddresses(runtime, target, addresses, next, deadlineMs, options, pick(failed, result), done, mayShare);
      // Under Bun a connect past its time is abandoned: its socket stays until the kernel gives
      // up (~2 min, pending-connect.ts), whatever comes of the dial. One share per dial, then:
      // after a share has run out, the next address gets all that is left.
      if (shared && timeoutMs < remainingMs) {
        return tryAddresses(runtime, target, addresses, next, deadlineMs, options, pick(failed, shareTimeout(target, address, timeoutMs, options.timeoutMs)), done, false);
      }
      // The deadline's own timeout stands for the whole dial: it replaces a share's.
      const err = timeoutError(target, options.timeoutMs);
      tryAddresses(runtime, target, addresses, next, deadlineMs, options, failed?.kind === "connectTimeout" ? err : pick(failed, err), done, false);
    });
    return;
  }
  const err = failure ?? lookupFailure(target.host);
  // Every address was refused by policy before any connect: still answer asynchronously, as the
  // callers' handshake code expects (it may be in the middle of parsing).
  queueMicrotask(() => done(err));
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

/** One of a name's addresses did not connect within its share of the deadline (shareMs). */
function shareTimeout(target: DialTarget, address: string, shareMs: number, timeoutMs: number): ProxyError {
  return new ProxyError("connectTimeout", `${hostPort(target.host, target.port)}: ${hostPort(address, target.port)} not connected within its ${Math.round(shareMs)} ms share of the ${timeoutMs} ms connect timeout`);
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
