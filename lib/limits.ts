/**
 * Byte limits and timeouts (SPEC §5), each with its unit in the name and the precedent it follows.
 * Protocol machines enforce the byte limits; session drivers own the clocks. Every value can be
 * overridden from the configuration (see lib/config.ts); these are the defaults.
 */

export interface Limits {
  /** Longest HTTP request line; over it -> 414. nginx large_client_header_buffers 8k, RFC 9112 §3. */
  readonly maxRequestLineBytes: number;
  /** Whole HTTP header section; over it -> 431. Envoy 60 KiB, nginx 4x8k; 32 KiB in between. */
  readonly maxHeaderBytes: number;
  /** Header fields per message; over it -> 431. Envoy 100, HAProxy 101. */
  readonly maxHeaderCount: number;
  /** From the first byte of a request head to its end; over it -> 408. nginx client_header_timeout. */
  readonly headerTimeoutMs: number;
  /** A whole SOCKS handshake, greeting to request. Dante negotiate timeout 30 s; 10 s is plenty on a LAN. */
  readonly handshakeTimeoutMs: number;
  /** Upstream TCP connect; over it -> 504 / REP 0x06. Envoy edge recommendation 15 s. */
  readonly connectTimeoutMs: number;
  /** HTTP exchange with no byte moving either way: before the response head -> 504 (408 while the
   *  client's body is due), after it the connection is cut. nginx proxy_read_timeout 60 s (also
   *  an inactivity timer), client_body_timeout 60 s. */
  readonly responseTimeoutMs: number;
  /** Idle HTTP keep-alive client connection between requests. nginx keepalive_timeout 75 s. */
  readonly idleTimeoutMs: number;
  /** Tunnel with no bytes either way. Envoy tcp_proxy idle_timeout 1 h. */
  readonly tunnelIdleTimeoutMs: number;
  /** After one side half-closed, how long the tunnel may go with no byte moving. HAProxy client-fin/server-fin. */
  readonly halfClosedTimeoutMs: number;
  /** Bytes queued toward one side before the other side is paused. Envoy per-connection buffer 1 MiB; 64 KiB keeps 1000s of tunnels cheap. */
  readonly maxBufferedBytes: number;
  /** Open connections per listener; more are refused at once. Envoy edge 10000; ours also stays below RLIMIT_NOFILE. */
  readonly maxConnections: number;
  /** SIGTERM -> listeners still serve for this long (the workload may still be finishing calls). */
  readonly drainDelayMs: number;
  /** After listeners close, open connections get this long before they are cut. Kubernetes default grace is 30 s. */
  readonly gracePeriodMs: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  maxRequestLineBytes: 8 * 1024,
  maxHeaderBytes: 32 * 1024,
  maxHeaderCount: 100,
  headerTimeoutMs: 10_000,
  handshakeTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  responseTimeoutMs: 60_000,
  idleTimeoutMs: 60_000,
  tunnelIdleTimeoutMs: 3_600_000,
  halfClosedTimeoutMs: 3_600_000,
  maxBufferedBytes: 64 * 1024,
  maxConnections: 4096,
  drainDelayMs: 5_000,
  gracePeriodMs: 25_000,
});

/**
 * Log bytes waiting for a stdout reader that does not keep up (a stalled pipe, a paused
 * terminal). Beyond it lines are dropped and counted (`sidecar_log_lines_dropped_total`, and a
 * `log lines dropped` line once the reader catches up) instead of growing the heap without end:
 * HAProxy drops and counts log messages when its buffer is full. 1 MiB is ~4000 connection lines.
 * Not configurable.
 */
export const LOG_QUEUE_MAX_BYTES = 1024 * 1024;

/**
 * Lingering close (RFC 9112 §9.6): a socket we end before its peer's FIN is half-closed, and
 * what the peer still sends is read and dropped until its FIN, so the close sends no reset that
 * would destroy response bytes the peer has not read yet. The socket is closed after
 * LINGER_IDLE_MS without a byte from the peer, or LINGER_MAX_MS in all: nginx lingering_timeout
 * 5 s and lingering_time 30 s. Not configurable.
 */
export const LINGER_IDLE_MS = 5_000;
export const LINGER_MAX_MS = 30_000;
/**
 * Sockets lingering at once, at most (lib/runtime/linger.ts): each holds a descriptor
 * for up to LINGER_MAX_MS outside the connection cap. nginx counts lingering connections in
 * worker_connections (512 by default); 1024 here, and never more than an eighth of the
 * descriptors left after RESERVED_FDS (lib/app.ts), which the connection cap then leaves free.
 */
export const LINGER_MAX_SOCKETS = 1024;

/**
 * A SOCKS client over the connection cap is refused by the reply its version asks for (SPEC §4:
 * SOCKS4 CD 0x5B; SOCKS5 a close), and the version is in its first bytes: they are awaited for
 * at most REFUSED_READ_MS (clients send their request with the connect, or right after), by at
 * most REFUSED_READS_MAX clients at once; past that a refused client is closed at once. Each
 * holds a descriptor outside the cap, within RESERVED_FDS (lib/app.ts). Not configurable.
 */
export const REFUSED_READ_MS = 1_000;
export const REFUSED_READS_MAX = 16;

/**
 * Connects that passed --connect-timeout while the kernel still tries (lib/runtime/pending-connect.ts):
 * Bun cannot close a socket before it opens, so a dial to a host that drops SYNs (a firewall, a
 * workload whose accept queue is full) keeps its descriptor until the kernel gives up: 127 s
 * with Linux's default 6 SYN retries, outside the connection cap. HAProxy and Envoy close such a
 * socket at their timeout. At most ABANDONED_CONNECTS_MAX at once, and never more than an eighth
 * of the descriptors left after RESERVED_FDS (lib/app.ts, like the lingering budget); past it a
 * new dial is refused at once as over a limit (503, SOCKS5 0x01) instead of running the process
 * out of descriptors (EMFILE stops accepting, admin included). Not configurable.
 */
export const ABANDONED_CONNECTS_MAX = 1024;
/**
 * An abandoned connect the runtime has still reported nothing about after this long is no
 * longer counted (the kernel has given up by then with the default SYN retries: 127 s), so a
 * runtime that never reports one cannot shrink the budget for good.
 */
export const ABANDONED_CONNECT_FORGET_MS = 150_000;

/**
 * While a listener refuses connections over its cap, an `over the connection cap` warning is
 * written at the first refusal, and at the end of each CAP_WARN_INTERVAL_MS in which more came,
 * naming how many (log.ts ThrottledLine): an operator sees the cap being hit in the log, and a
 * flood of refused clients writes one line per interval, not one per connection (nginx writes
 * one per refused accept). Not configurable.
 */
export const CAP_WARN_INTERVAL_MS = 10_000;

/**
 * A name that resolves to several addresses has them tried one after another within one
 * --connect-timeout; on forward listeners (lib/dial.ts DialOptions.shareDeadline) each is given
 * an equal share of what is left of it, but at least this long (all that is left if less): an
 * address that drops SYNs (a dead server left in DNS, a half-deployed IPv6 route) then costs
 * its share, not the whole timeout. Go's net.Dialer shares its deadline the same way, with the
 * same 2 s floor (partialDeadline). Not configurable.
 */
export const ADDRESS_CONNECT_MIN_MS = 2_000;
