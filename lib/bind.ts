/**
 * Binding one listener at each of its addresses, on one port: with port 0 the first address
 * picks a free port and the others share it. Two things a host may do to that are handled here,
 * everything else fails the start (a ListenError naming listener, address, port and reason):
 * - the port the first address picked is in use on another address (any other socket on the
 *   host: CI met a test server on ::1 holding the port our 127.0.0.1 got): the attempt is let
 *   go and the first address picks again;
 * - the host has no IPv6 (sysctl, Docker without IPv6): a default IPv6 address is skipped with
 *   a warning, since the defaults must start anywhere; an address the operator listed stays fatal.
 */
import { isIP } from "./address.ts";
import { ListenError, listenOrExplain } from "./listen-error.ts";
import type { Logger } from "./log.ts";
import type { Listener } from "./runtime/types.ts";

/** Binds of one listener on port 0 retried when the port its first address got is in use on another. */
const PORT_ZERO_ATTEMPTS = 8;

export interface BoundAddress {
  /** The address the listener was asked for, as logged ("::" rather than what the OS reports). */
  readonly address: string;
  readonly listener: Listener;
}

export interface BindRequest {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly port: number;
  /** The addresses are the built-in default (IPv6 may then be skipped). */
  readonly defaultBinds: boolean;
  readonly listen: (address: string, port: number) => Listener;
}

export function bindAddresses({ name, addresses, port, defaultBinds, listen }: BindRequest, log: Logger): BoundAddress[] {
  for (let attempt = 1; ; attempt++) {
    const bound: BoundAddress[] = [];
    try {
      let boundPort = port;
      for (const address of addresses) {
        let listener: Listener;
        try {
          listener = listenOrExplain(name, address, boundPort, () => listen(address, boundPort));
        } catch (err) {
          if (!(defaultBinds && ipv6Unavailable(address, err))) throw err;
          if (attempt === 1) log.warn("IPv6 address skipped: IPv6 is not available on this host", { listener: name, address, code: (err as ListenError).code });
          continue;
        }
        boundPort = listener.port;
        bound.push({ address, listener });
      }
      return bound;
    } catch (err) {
      for (const b of bound) void b.listener.stop();
      if (port !== 0 || bound.length === 0 || (err as ListenError).code !== "EADDRINUSE" || attempt >= PORT_ZERO_ATTEMPTS) throw err;
    }
  }
}

/** A default IPv6 bind address the host cannot have: no IPv6 on lo (EADDRNOTAVAIL), or none at all. */
function ipv6Unavailable(address: string, err: unknown): boolean {
  return err instanceof ListenError && isIP(address) === 6 && (err.code === "EADDRNOTAVAIL" || err.code === "EAFNOSUPPORT");
}
