/**
 * Dialling an upstream: resolve the name ourselves, check each resolved address against the
 * destination policy (so a name that resolves to a denied address — DNS rebinding — is refused
 * on the address actually dialled), then try the addresses in the resolver's order within one
 * connect deadline. IPv6 and IPv4 results are both tried.
 */
import { isIP } from "node:net";
import { ProxyError, asProxyError } from "./errors.ts";
import type { Conn, Runtime } from "./runtime/types.ts";

export interface DialTarget {
  readonly host: string;
  readonly port: number;
}

export interface DialOptions {
  readonly timeoutMs: number;
  /** Returns false for an address the policy denies. */
  readonly allowAddress?: (address: string) => boolean;
}

export interface Dialled {
  readonly conn: Conn;
  /** The address actually connected to. */
  readonly address: string;
}

/** Rank of the error kinds when every address failed: the most telling one is reported. */
const KIND_RANK: Record<string, number> = {
  connectRefused: 5,
  connectTimeout: 4,
  hostUnreachable: 3,
  netUnreachable: 2,
  denied: 1,
};

export async function dial(runtime: Runtime, target: DialTarget, options: DialOptions): Promise<Dialled> {
  const deadline = Date.now() + options.timeoutMs;
  const host = stripBrackets(target.host);
  const addresses = isIP(host) ? [host] : await withDeadline(runtime.resolve(host), deadline, target, options.timeoutMs);
  let failure: ProxyError | null = null;
  for (const address of addresses) {
    if (options.allowAddress && !options.allowAddress(address)) {
      failure = pick(failure, new ProxyError("denied", `${target.host} -> ${address} is denied by policy`));
      continue;
    }
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) {
      failure = pick(failure, timeoutError(target, options.timeoutMs));
      break;
    }
    try {
      const conn = await runtime.connect({ hostname: address, port: target.port, timeoutMs: remainingMs });
      return { conn, address };
    } catch (err) {
      failure = pick(failure, asProxyError(err));
    }
  }
  throw failure ?? new ProxyError("dnsFailed", `${target.host}: no addresses`);
}

function pick(previous: ProxyError | null, next: ProxyError): ProxyError {
  if (!previous) return next;
  return (KIND_RANK[next.kind] ?? 0) > (KIND_RANK[previous.kind] ?? 0) ? next : previous;
}

function timeoutError(target: DialTarget, timeoutMs: number): ProxyError {
  return new ProxyError("connectTimeout", `${target.host}:${target.port} not connected within ${timeoutMs} ms`);
}

function withDeadline<T>(promise: Promise<T>, deadline: number, target: DialTarget, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(timeoutError(target, timeoutMs)), Math.max(0, deadline - Date.now()));
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

export function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
