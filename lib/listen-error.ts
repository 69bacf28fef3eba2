/**
 * A listener that cannot bind, as the "cannot start" line reports it: which listener, the address
 * and port, and the OS reason. Bun's own message says only "Failed to listen at ADDRESS"; the
 * reason is in the error's `code` (Bun sets code, errno and syscall; Deno sets code too, and its
 * message already names the reason).
 */
import { hostPort } from "./address.ts";
import { errnoOf } from "./errors.ts";

/** What the usual bind failures mean, in the operator's words. */
const BIND_REASONS: Readonly<Record<string, string>> = Object.freeze({
  EADDRINUSE: "address already in use",
  EACCES: "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)",
  EADDRNOTAVAIL: "no such local address",
});

export class ListenError extends Error {
  /** The OS error code (EADDRINUSE, ...), when the runtime gave one. */
  readonly code: string | undefined;

  constructor(
    readonly listener: string,
    readonly address: string,
    readonly port: number,
    cause: unknown,
  ) {
    const code = errnoOf(cause);
    const detail = cause instanceof Error ? cause.message : String(cause);
    const reason = code === undefined ? detail : `${code}, ${BIND_REASONS[code] ?? detail}`;
    super(`${listener} listener cannot listen on ${hostPort(address, port)}: ${reason}`, { cause });
    this.name = "ListenError";
    this.code = code;
  }
}

/** Runs one bind; a failure becomes a ListenError naming the listener, address and port. */
export function listenOrExplain<T>(listener: string, address: string, port: number, bind: () => T): T {
  try {
    return bind();
  } catch (err) {
    throw new ListenError(listener, address, port, err);
  }
}
