/**
 * Loopback peers for tests: an echo server, a streaming server, and a raw client with explicit
 * half-close, all with real backpressure (Bun's write may take part of a chunk). Every wait is
 * bounded by a timeout so a broken proxy fails a test instead of hanging it.
 */
import { createHash } from "node:crypto";

type Sock = Bun.Socket<PeerState>;

interface PeerState {
  queue: Uint8Array[];
  onDrained: (() => void) | null;
  finAfterFlush: boolean;
}

function newState(): PeerState {
  return { queue: [], onDrained: null, finAfterFlush: false };
}

/** Writes with a queue; calls back when everything queued has reached the kernel. */
function send(sock: Sock, chunk: Uint8Array): boolean {
  const st = sock.data;
  if (st.queue.length > 0) {
    st.queue.push(chunk);
    return false;
  }
  const n = sock.write(chunk);
  if (n === chunk.byteLength) return true;
  st.queue.push(chunk.subarray(Math.max(0, n)));
  return false;
}

function flush(sock: Sock): void {
  const st = sock.data;
  while (st.queue.length > 0) {
    const head = st.queue[0]!;
    const n = sock.write(head);
    if (n < 0) return;
    if (n < head.byteLength) {
      st.queue[0] = head.subarray(n);
      return;
    }
    st.queue.shift();
  }
  if (st.finAfterFlush) {
    st.finAfterFlush = false;
    sock.shutdown();
  }
  const cb = st.onDrained;
  st.onDrained = null;
  cb?.();
}

function finWhenFlushed(sock: Sock): void {
  if (sock.data.queue.length === 0) sock.shutdown();
  else sock.data.finAfterFlush = true;
}

export interface TestServer {
  port: number;
  /** Connections accepted so far. */
  accepted: number;
  /** Connections currently open. */
  open: number;
  stop(): void;
}

/** Echoes everything; answers a FIN with a FIN after the echo is flushed (half-close aware). */
export function echoServer(hostname = "127.0.0.1", port = 0): TestServer {
  const info = { accepted: 0, open: 0 };
  const server = Bun.listen<PeerState>({
    hostname,
    port,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = newState();
        info.accepted++;
        info.open++;
      },
      data(s, chunk) {
        if (!send(s, chunk)) {
          s.pause();
          s.data.onDrained = () => s.resume();
        }
      },
      drain: flush,
      end(s) {
        finWhenFlushed(s);
      },
      close() {
        info.open--;
      },
    },
  });
  return {
    port: server.port,
    get accepted() {
      return info.accepted;
    },
    get open() {
      return info.open;
    },
    stop: () => server.stop(true),
  };
}

/** Deterministic pseudo-random bytes (xorshift32), so a corrupted or reordered byte changes the hash. */
export function patternChunk(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const view = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < view.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    view[i] = x >>> 0;
  }
  return out;
}

export function sha256(): { update(b: Uint8Array): void; hex(): string } {
  const h = createHash("sha256");
  return { update: (b) => void h.update(b), hex: () => h.digest("hex") };
}

/**
 * A server that, per connection, streams `totalBytes` of pattern data, then FINs; it hashes
 * what it receives and exposes the last connection's hash and byte count.
 */
export function streamServer(totalBytes: number, chunkBytes = 64 * 1024, hostname = "127.0.0.1") {
  const chunk = patternChunk(7, chunkBytes);
  const result = { receivedBytes: 0, receivedHash: "", sentHash: "" };
  const expected = sha256();
  for (let sent = 0; sent < totalBytes; sent += chunkBytes) expected.update(chunk.subarray(0, Math.min(chunkBytes, totalBytes - sent)));
  result.sentHash = expected.hex();
  const server = Bun.listen<PeerState & { hash: ReturnType<typeof sha256>; sent: number; got: number; recorded?: boolean }>({
    hostname,
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(s) {
        s.data = { ...newState(), hash: sha256(), sent: 0, got: 0 };
        pump(s);
      },
      data(s, c) {
        s.data.got += c.byteLength;
        s.data.hash.update(c);
      },
      drain(s) {
        flush(s as unknown as Sock);
      },
      end(s) {
        record(s.data);
      },
      close(s) {
        // After our own shutdown(), the client's FIN arrives as close (RUNTIME-NOTES).
        record(s.data);
      },
    },
  });
  function record(d: { hash: ReturnType<typeof sha256>; got: number; recorded?: boolean }): void {
    if (d.recorded) return;
    d.recorded = true;
    result.receivedBytes = d.got;
    result.receivedHash = d.hash.hex();
  }
  function pump(s: Bun.Socket<PeerState & { sent: number }>): void {
    while (s.data.sent < totalBytes) {
      const n = Math.min(chunkBytes, totalBytes - s.data.sent);
      s.data.sent += n;
      if (!send(s as unknown as Sock, chunk.subarray(0, n))) {
        s.data.onDrained = () => pump(s);
        return;
      }
    }
    finWhenFlushed(s as unknown as Sock);
  }
  return { port: server.port, result, stop: () => server.stop(true) };
}

/** Conditions waited on by a client, re-checked whenever something happens to it. */
export class Waiters {
  private pending: Array<() => void> = [];

  wake(): void {
    const w = this.pending;
    this.pending = [];
    for (const f of w) f();
  }

  /** Resolves when cond() holds (checked at each wake); rejects with message() after timeoutMs. */
  waitFor(cond: () => boolean, timeoutMs: number, message: () => string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(message())), timeoutMs);
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.pending.push(check);
      };
      this.pending.push(check);
    });
  }
}

/** A raw TCP client with explicit half-close and bounded waits. */
export class RawClient {
  readonly chunks: Uint8Array[] = [];
  receivedBytes = 0;
  gotFin = false;
  closed = false;
  closeError: Error | undefined;
  private sock!: Sock;
  private readonly waiters = new Waiters();
  onChunk: ((c: Uint8Array) => void) | null = null;
  keepChunks = true;

  static async connect(port: number, hostname = "127.0.0.1"): Promise<RawClient> {
    const c = new RawClient();
    c.sock = await Bun.connect<PeerState>({
      hostname,
      port,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.data = newState();
        },
        data: (_s, chunk) => {
          c.receivedBytes += chunk.byteLength;
          if (c.keepChunks) c.chunks.push(chunk);
          c.onChunk?.(chunk);
          c.wake();
        },
        drain: flush,
        end: () => {
          c.gotFin = true;
          c.wake();
        },
        close: (s, err) => {
          c.closed = true;
          c.closeError = err;
          // After our own shutdown(), Bun reports the peer's FIN as close (RUNTIME-NOTES).
          if (!err && c.halfClosed) c.gotFin = true;
          // A write waiting for drain when the peer closed (a proxy that answered 431 and
          // closed mid-head) will never drain: let it return, the bytes are lost anyway.
          const drained = s.data?.onDrained;
          if (s.data) s.data.onDrained = null;
          drained?.();
          c.wake();
        },
      },
    });
    return c;
  }

  private wake(): void {
    this.waiters.wake();
  }

  /** Resolves when cond() holds; rejects after timeoutMs. */
  waitFor(cond: () => boolean, timeoutMs = 20_000, what = "condition"): Promise<void> {
    return this.waiters.waitFor(cond, timeoutMs, () => `timed out waiting for ${what}`);
  }

  /** Writes all bytes, waiting for drain as needed; returns at once once the socket has closed. */
  async write(data: Uint8Array | string): Promise<void> {
    if (this.closed) return;
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    if (send(this.sock, bytes)) return;
    await new Promise<void>((resolve) => (this.sock.data.onDrained = resolve));
  }

  halfClosed = false;

  /** The client's own port, as the proxy logs it (`client` is "127.0.0.1:PORT"). */
  get localPort(): number {
    return this.sock.localPort;
  }

  halfClose(): void {
    this.halfClosed = true;
    finWhenFlushed(this.sock);
  }
  pause(): void {
    this.sock.pause();
  }
  resume(): void {
    this.sock.resume();
  }
  close(): void {
    this.sock.end();
  }
  reset(): void {
    this.sock.terminate();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString("latin1");
  }
  bytes(): Uint8Array {
    return Buffer.concat(this.chunks);
  }
}

export function waitUntil(cond: () => boolean, timeoutMs = 20_000, what = "condition", stepMs = 10): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadlineMs = Date.now() + timeoutMs;
    const tick = () => {
      if (cond()) return resolve();
      if (Date.now() > deadlineMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, stepMs);
    };
    tick();
  });
}

/** A port nobody listens on: bind, read the port, close. */
export function closedPort(hostname = "127.0.0.1"): number {
  const s = Bun.listen({ hostname, port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}
