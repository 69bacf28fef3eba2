/**
 * HTTP/1.1 proxy driver, forward and reverse (SPEC §3), over the pure parser in
 * lib/protocol/http1.ts. One session per client connection:
 *
 *   awaitHead -> (CONNECT) tunnel via the shared relay
 *             -> exchange: request head + body to the upstream, response back
 *                (1xx relayed; 101 after an Upgrade request becomes a tunnel)
 *             -> awaitHead again (keep-alive; pipelined requests wait in `pending`
 *                and are answered in order, one exchange at a time)
 *
 * Bodies are relayed unchanged (chunked stays chunked); BodyDecoder only finds their end.
 * Upstream connections are kept per client connection and reused while the next request goes
 * to the same host:port (keep-alive across requests, new dial when the origin changes).
 * A response that has started is never followed by an error response: if the upstream dies
 * mid-body the client connection is closed.
 *
 * Clocks owned here: header deadline (408), keep-alive idle, upstream response head (504).
 */
import { createVerifier, type Verifier } from "../auth.ts";
import { ProxyError, asProxyError } from "../errors.ts";
import { BodyDecoder } from "../protocol/http-body.ts";
import { HeadScan, type RequestHead, type ResponseHead, parseRequestHead, parseResponseHead, responseFraming } from "../protocol/http1.ts";
import { Holding } from "../relay.ts";
import type { Conn, ConnEvents } from "../runtime/types.ts";
import { type ConnRecord, terminationFor } from "../tracker.ts";
import { type ListenerContext, type ProtocolDriver, formatTarget, openTunnel, routeFor, startRelay } from "../tunnel.ts";
import { Upstream } from "./http-upstream.ts";
import { CONNECT_ESTABLISHED, clientResponseHead, errorFor, interimResponseHead, proxyAuthorized, routeRequest } from "./http-message.ts";
import { dial } from "../dial.ts";

const EMPTY = new Uint8Array(0);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

/** One request/response in flight. */
interface Exchange {
  readonly request: RequestHead;
  readonly upstreamHead: Uint8Array;
  readonly targetKey: string;
  /** Request body still to relay (null once complete). */
  requestBody: BodyDecoder | null;
  upstream: Upstream | null;
  response: ResponseHead | null;
  responseBody: BodyDecoder | null;
  /** Bytes of the upstream's response head seen so far. */
  responseHeadBuf: Uint8Array;
  readonly responseScan: HeadScan;
  responseStarted: boolean;
  /** Bytes received from the upstream (the inactivity clock watches them). */
  upstreamBytes: number;
  keepClient: boolean;
  reuseUpstream: boolean;
}

export class HttpSession implements ConnEvents {
  private pending: Uint8Array = EMPTY;
  private readonly scan = new HeadScan();
  private exchange: Exchange | null = null;
  private upstream: Upstream | null = null;
  /**
   * One clock per session, whatever it waits for (`phase`): moving a deadline is a field write,
   * and the timer is re-armed only when it would fire too late — not three setTimeout /
   * clearTimeout pairs per request.
   */
  private phase: "none" | "idle" | "head" | "exchange" = "none";
  private deadlineMs = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private timerAtMs = 0;
  /** Bytes moved in the exchange when its deadline was last set (the inactivity check). */
  private exchangeSeen = 0;
  private clientEnded = false;
  private closed = false;
  private handedOff = false;
  private requests = 0;
  private termination: string | null = null;
  private error: ProxyError | undefined;
  private readonly verify: Verifier | null;

  constructor(
    readonly ctx: ListenerContext,
    readonly conn: Conn,
    readonly rec: ConnRecord,
  ) {
    const auth = ctx.config.auth;
    // Proxy-Authorization is for forward proxies; a reverse listener serves any client it admits.
    this.verify = auth && ctx.workload === null ? createVerifier(auth) : null;
  }

  start(): void {
    this.conn.setEvents(this);
    this.rec.abort = () => this.destroy("shutdown");
    this.rec.drain = () => {
      if (!this.exchange && this.pending.byteLength === 0) this.closeClient("shutdown");
    };
    this.armIdle();
  }

  // ---- client events ----

  onData(chunk: Uint8Array): void {
    if (this.closed) return;
    this.rec.bytesUp += chunk.byteLength;
    const ex = this.exchange;
    if (ex && ex.requestBody && ex.upstream) {
      this.relayRequestBody(ex, chunk);
      return;
    }
    this.pending = concat(this.pending, chunk);
    if (ex) {
      // Pipelined bytes wait for the current exchange; stop reading if they pile up.
      if (this.pending.byteLength > this.ctx.limits.maxBufferedBytes) this.conn.pause();
      return;
    }
    this.parseNext();
  }

  onEnd(): void {
    this.clientEnded = true;
    // A half-closed client still gets the response to what it sent (SPEC §4).
    if (!this.exchange) {
      if (this.pending.byteLength > 0) this.parseNext();
      if (!this.exchange) this.closeClient("client-fin");
    }
  }

  onDrain(): void {
    this.exchange?.upstream?.conn.resume();
  }

  onClose(err?: Error): void {
    if (this.handedOff) return;
    this.closed = true;
    this.clearTimers();
    if (this.exchange) this.termination ??= err ? "client-reset" : "client-close";
    this.dropUpstream(true);
    this.rec.requests = this.requests;
    this.ctx.tracker.close(this.rec, this.termination ?? "client-fin", this.error);
  }

  // ---- requests ----

  private parseNext(): void {
    if (this.pending.byteLength === 0 || this.exchange || this.closed) return;
    // The header deadline runs from the head's first byte, not from each byte.
    if (this.phase !== "head") this.setDeadline("head", this.ctx.limits.headerTimeoutMs);
    let result;
    try {
      result = parseRequestHead(this.pending, this.ctx.limits, this.scan);
    } catch (err) {
      return this.fail(asProxyError(err));
    }
    if (!result.ok) {
      if (this.clientEnded) this.closeClient("client-fin");
      return;
    }
    this.phase = "none"; // dialling: the connect timeout rules
    const rest = this.pending.subarray(result.consumed);
    this.pending = EMPTY;
    if (this.requests++ === 0) this.ctx.tracker.handshakeDone(this.rec);
    this.handleRequest(result.head, rest);
  }

  private handleRequest(request: RequestHead, rest: Uint8Array): void {
    if (this.verify && !proxyAuthorized(request.headers, this.verify)) {
      return this.fail(new ProxyError("authFailed", "proxy authentication required"));
    }
    if (request.method === "CONNECT") return this.connectTunnel(request, rest);
    let routed;
    try {
      routed = routeRequest({ request, workload: this.ctx.workload, clientIp: this.conn.remoteAddress });
    } catch (err) {
      return this.fail(asProxyError(err));
    }
    const key = formatTarget(routed.target);
    this.rec.target = key;
    const ex: Exchange = {
      request,
      upstreamHead: routed.head,
      targetKey: key,
      requestBody: new BodyDecoder(request.framing),
      upstream: null,
      response: null,
      responseBody: null,
      responseHeadBuf: EMPTY,
      responseScan: new HeadScan(),
      responseStarted: false,
      upstreamBytes: 0,
      keepClient: request.keepAlive,
      reuseUpstream: false,
    };
    if (ex.requestBody!.done) ex.requestBody = null;
    this.exchange = ex;
    this.pending = rest;
    const idle = this.upstream;
    if (idle && idle.key === key && idle.usable()) return this.useUpstream(ex, idle);
    if (idle) this.dropUpstream(false);
    const startedMs = Date.now();
    dial(this.ctx.runtime, routed.target, { timeoutMs: this.ctx.limits.connectTimeoutMs, allowAddress: this.ctx.allowAddress }).then(
      ({ conn }) => {
        this.ctx.tracker.connected(this.rec, Date.now() - startedMs);
        if (this.closed || this.exchange !== ex) return conn.destroy();
        this.useUpstream(ex, new Upstream(key, conn));
      },
      (err: unknown) => {
        if (this.exchange === ex) this.fail(asProxyError(err));
      },
    );
  }

  private useUpstream(ex: Exchange, upstream: Upstream): void {
    this.upstream = upstream;
    ex.upstream = upstream;
    upstream.attach(this);
    this.armExchangeTimer(ex);
    const body = ex.requestBody ? this.pending : EMPTY;
    if (body.byteLength > 0) {
      this.pending = EMPTY;
      this.relayRequestBody(ex, body, ex.upstreamHead); // head and body in one write
    } else upstream.conn.write(ex.upstreamHead);
    // Reading may have been paused while the dial was pending; resume unless the upstream is full.
    if (upstream.conn.queuedBytes < this.ctx.limits.maxBufferedBytes) this.conn.resume();
  }

  /**
   * The exchange's inactivity clock, like nginx's proxy_read_timeout / client_body_timeout: it
   * fires after --response-timeout with no byte moving either way, so a slow upload or a long
   * download that keeps moving is never cut. Before the response head that is a 504 (or a 408
   * while the client's body is still due); mid-response the connection is cut.
   */
  private armExchangeTimer(ex: Exchange): void {
    this.exchangeSeen = this.bytesMoved(ex);
    this.setDeadline("exchange", this.ctx.limits.responseTimeoutMs);
  }

  private bytesMoved(ex: Exchange): number {
    return this.rec.bytesUp + this.rec.bytesDown + ex.upstreamBytes;
  }

  private exchangeDeadline(ex: Exchange): void {
    const ms = this.ctx.limits.responseTimeoutMs;
    if (this.bytesMoved(ex) !== this.exchangeSeen) return this.armExchangeTimer(ex); // still moving
    if (ex.response) this.fail(new ProxyError("upstreamTimeout", `response stalled for ${ms} ms`));
    else if (ex.requestBody) this.fail(new ProxyError("headerTimeout", `request body stalled for ${ms} ms`));
    else this.fail(new ProxyError("upstreamTimeout", `no response head within ${ms} ms`));
  }

  private setDeadline(phase: "idle" | "head" | "exchange", ms: number): void {
    this.phase = phase;
    this.deadlineMs = Date.now() + ms;
    if (this.timer === undefined || this.deadlineMs < this.timerAtMs) this.armTimer();
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    this.timerAtMs = this.deadlineMs;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, this.deadlineMs - Date.now()));
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.closed || this.handedOff || this.phase === "none") return;
    if (Date.now() < this.deadlineMs) return this.armTimer(); // the deadline moved on
    const phase = this.phase;
    this.phase = "none";
    if (phase === "idle") this.closeClient("idle-timeout");
    else if (phase === "head") this.fail(new ProxyError("headerTimeout", `request head not complete in ${this.ctx.limits.headerTimeoutMs} ms`));
    else if (this.exchange) this.exchangeDeadline(this.exchange);
  }

  /** Relays what of `chunk` belongs to the request body; `head` goes out in the same write. */
  private relayRequestBody(ex: Exchange, chunk: Uint8Array, head?: Uint8Array): void {
    let used;
    try {
      ({ used } = ex.requestBody!.feed(chunk));
    } catch (err) {
      return this.fail(asProxyError(err));
    }
    const up = ex.upstream!.conn;
    const body = used === chunk.byteLength ? chunk : chunk.subarray(0, used);
    const out = head ? (used > 0 ? concat(head, body) : head) : body;
    if (out.byteLength > 0 && !up.write(out)) {
      if (up.queuedBytes >= this.ctx.limits.maxBufferedBytes) this.conn.pause();
    }
    if (ex.requestBody!.done) {
      ex.requestBody = null;
      if (used < chunk.byteLength) this.pending = concat(this.pending, chunk.subarray(used));
    }
  }

  /** The upstream drained: the client may send more request body. */
  upstreamDrained(): void {
    this.conn.resume();
  }

  // ---- responses (called by Upstream) ----

  fromUpstream(chunk: Uint8Array): void {
    const ex = this.exchange;
    if (!ex) return this.upstreamGone(new ProxyError("upstreamProtocol", "bytes from an idle upstream"));
    ex.upstreamBytes += chunk.byteLength;
    if (ex.responseBody) return this.relayResponseBody(ex, chunk, 0);
    ex.responseHeadBuf = concat(ex.responseHeadBuf, chunk);
    this.parseResponse(ex);
  }

  private parseResponse(ex: Exchange): void {
    for (;;) {
      let result;
      try {
        result = parseResponseHead(ex.responseHeadBuf, this.ctx.limits, ex.responseScan);
      } catch (err) {
        return this.fail(asProxyError(err));
      }
      if (!result.ok) return;
      const response = result.head;
      const rest = ex.responseHeadBuf.subarray(result.consumed);
      ex.responseHeadBuf = EMPTY;
      if (response.status === 101 && ex.request.upgrade !== null) return this.upgradeTunnel(ex, response, rest);
      if (response.status >= 100 && response.status < 200) {
        // 100 Continue, 103 Early Hints: relayed; the final response follows.
        this.toClient(interimResponseHead(response));
        ex.responseHeadBuf = rest;
        if (rest.byteLength === 0) return;
        continue;
      }
      return this.startResponse(ex, response, rest);
    }
  }

  private startResponse(ex: Exchange, response: ResponseHead, rest: Uint8Array): void {
    ex.response = response;
    const framing = responseFraming(ex.request, response);
    // A response that comes before the whole request body (an early 413, 401, ...) ends the
    // connection: the rest of that body must not be read as the next request.
    const bodyPending = ex.requestBody !== null;
    const clientKeep = ex.keepClient && !bodyPending && !this.clientEnded && !this.ctx.draining() && framing.kind !== "close";
    ex.keepClient = clientKeep;
    ex.reuseUpstream = response.keepAlive && framing.kind !== "close";
    const head = clientResponseHead(response, ex.request.version, clientKeep);
    ex.responseBody = new BodyDecoder(framing, { response: true });
    if (!ex.responseBody.done && rest.byteLength > 0) return this.relayResponseBody(ex, rest, 0, head);
    ex.responseStarted = true;
    this.toClient(head);
    if (ex.responseBody.done) this.finishExchange(ex, rest);
  }

  /**
   * Relays what of `chunk` belongs to the response body. `head` (the response head, on the
   * first call) goes out in the same write: one send per small response instead of two, and a
   * body that turns out malformed is answered with a 502 rather than a cut-off response.
   */
  private relayResponseBody(ex: Exchange, chunk: Uint8Array, offset: number, head?: Uint8Array): void {
    let used;
    try {
      ({ used } = ex.responseBody!.feed(chunk, offset));
    } catch (err) {
      return this.fail(asProxyError(err));
    }
    const body = offset === 0 && used === chunk.byteLength ? chunk : chunk.subarray(offset, offset + used);
    if (head) {
      ex.responseStarted = true;
      this.toClient(used > 0 ? concat(head, body) : head);
    } else if (used > 0) this.toClient(body);
    if (this.conn.queuedBytes >= this.ctx.limits.maxBufferedBytes) ex.upstream?.conn.pause();
    if (ex.responseBody!.done) this.finishExchange(ex, chunk.subarray(offset + used));
  }

  private toClient(bytes: Uint8Array): void {
    this.rec.bytesDown += bytes.byteLength;
    this.conn.write(bytes);
  }

  private finishExchange(ex: Exchange, extra: Uint8Array): void {
    this.exchange = null;
    this.phase = "none";
    const upstream = ex.upstream;
    // Only an upstream that finished both directions cleanly is reused.
    if (upstream && (!ex.reuseUpstream || ex.requestBody !== null || extra.byteLength > 0)) {
      if (this.upstream === upstream) this.dropUpstream(false);
      else upstream.conn.end();
    } else upstream?.conn.resume();
    if (!ex.keepClient) return this.closeClient(this.clientEnded ? "client-fin" : "server-fin");
    this.conn.resume();
    this.armIdle();
    if (this.pending.byteLength > 0) this.parseNext();
    else if (this.clientEnded) this.closeClient("client-fin");
  }

  /** The upstream sent FIN or closed. */
  upstreamGone(err?: ProxyError, upstream?: Upstream): void {
    const ex = this.exchange;
    if (!ex || (upstream && ex.upstream !== upstream)) {
      // An idle kept-alive upstream went away: forget it.
      if (upstream && this.upstream === upstream) this.upstream = null;
      return;
    }
    if (ex.responseBody && !err) {
      try {
        ex.responseBody.finish(); // read-until-close bodies end here; others were truncated
        return this.finishExchange(ex, EMPTY);
      } catch (e) {
        return this.fail(asProxyError(e));
      }
    }
    this.fail(err ?? new ProxyError("upstreamProtocol", "upstream closed before a complete response"));
  }

  // ---- tunnels ----

  private connectTunnel(request: RequestHead, rest: Uint8Array): void {
    const authority = request.authority!;
    const target = routeFor(this.ctx, { host: authority.host, port: authority.port });
    this.handOff();
    this.rec.bytesUp -= rest.byteLength; // counted again by the relay as early tunnel bytes
    const held = new Holding(this.conn, this.ctx.limits.maxBufferedBytes);
    this.conn.setEvents(held);
    const conn = this.conn;
    openTunnel(this.ctx, this.rec, conn, held, target, {
      connected: () => {
        this.rec.bytesDown += CONNECT_ESTABLISHED.byteLength;
        conn.write(CONNECT_ESTABLISHED);
      },
      failed: (err) => conn.write(errorFor(err)),
    }, rest);
  }

  private upgradeTunnel(ex: Exchange, response: ResponseHead, rest: Uint8Array): void {
    this.toClient(interimResponseHead(response));
    const up = ex.upstream!.conn;
    const clientBytes = this.pending;
    this.handOff();
    this.rec.bytesUp -= clientBytes.byteLength; // the relay counts those again
    const relay = startRelay(this.ctx, this.rec, this.conn, up, null, clientBytes);
    if (rest.byteLength > 0) relay.fromServer(rest);
  }

  /** The relay owns both sockets from here; this session stops reacting to them. */
  private handOff(): void {
    this.handedOff = true;
    this.rec.drain = null; // the tunnel must not keep this session (and its buffers) alive
    this.clearTimers();
    this.upstream?.detach();
    this.rec.requests = this.requests;
  }

  // ---- endings ----

  private fail(err: ProxyError): void {
    if (this.closed) return;
    const started = this.exchange?.responseStarted ?? false;
    this.error = err;
    this.termination = terminationFor(err.kind);
    this.exchange = null;
    this.dropUpstream(true);
    if (started) return this.destroy(this.termination); // never a second status line
    this.toClient(errorFor(err));
    this.closeClient(this.termination);
  }

  private closeClient(termination: string): void {
    this.termination ??= termination;
    this.clearTimers();
    this.conn.end();
  }

  private destroy(termination: string): void {
    this.termination ??= termination;
    this.dropUpstream(true);
    this.conn.destroy();
  }

  /**
   * Lets go of the upstream connection. It is detached first: closing a Bun socket runs its
   * close handler synchronously, which must not re-enter this session.
   */
  private dropUpstream(abort: boolean): void {
    const upstream = this.upstream;
    if (!upstream) return;
    this.upstream = null;
    upstream.detach();
    if (abort) upstream.conn.destroy();
    else upstream.conn.end();
  }

  private armIdle(): void {
    this.setDeadline("idle", this.ctx.limits.idleTimeoutMs);
  }

  private clearTimers(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.phase = "none";
  }
}

export const httpDriver: ProtocolDriver = {
  handle(ctx: ListenerContext, conn: Conn, rec: ConnRecord): void {
    new HttpSession(ctx, conn, rec).start();
  },
  refuse(conn: Conn): void {
    conn.write(errorFor(new ProxyError("limitExceeded", "too many connections")));
    conn.end();
  },
};
