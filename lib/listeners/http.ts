/**
 * HTTP/1.1 proxy session, forward and reverse (SPEC §3), over the pure parser in
 * lib/protocol/http1.ts. One session per client connection (the driver, http-front.ts, sends a
 * first CONNECT head that arrives whole straight to the tunnel and builds no session for it):
 *
 *   awaitHead -> (CONNECT) tunnel via the shared relay
 *             -> exchange: request head + body to the upstream, response back
 *                (1xx relayed; 101 after an Upgrade request becomes a tunnel)
 *             -> awaitHead again (keep-alive; pipelined requests wait in `pending`
 *                and are answered in order, one exchange at a time)
 *
 * Bodies are relayed unchanged but for HTTP/1.0 clients (http-response.ts); BodyDecoder finds their end.
 * Upstream connections are kept per client connection and reused while the next request goes
 * to the same host:port (keep-alive across requests, new dial when the origin changes).
 * A response that has started is never followed by an error response: if the upstream dies
 * mid-body the client connection is closed.
 *
 * The response side is lib/listeners/http-response.ts (this session is its sink). Clocks owned
 * here, on one PhaseClock: keep-alive idle, header deadline (408), and the exchange's
 * inactivity limit (504 before the response head, a cut after it; its rules and the Exchange
 * record are in http-exchange.ts). CONNECT and a 101 hand both sockets to the relay
 * (http-tunnel.ts) once this session has let go of them (handOff).
 *
 * Longer than the ~300 lines the house style asks for, on purpose: what is left is the one state
 * machine (all its transitions in this file) and the per-request path, which was tuned to add no
 * object, closure or indirection per request; splitting either would cost one or the other.
 */
import { createVerifier, type Verifier } from "../auth.ts";
import { type DialTarget, dial } from "../dial.ts";
import { ProxyError, asProxyError } from "../errors.ts";
import { faultTermination } from "../fault.ts";
import { BodyDecoder, hasBody } from "../protocol/http-body.ts";
import { type Authority, type BodyFraming, HeadScan, type RequestHead, type ResponseHead, parseRequestHead } from "../protocol/http1.ts";
import { FlushTimeout } from "../runtime/flush.ts";
import type { Conn, ConnEvents } from "../runtime/types.ts";
import { inactivityTickMs, stalled, startStallChecks } from "../sweep.ts";
import { type ConnRecord, type Termination, terminationFor } from "../tracker.ts";
import { type ListenerContext, targetKey } from "../tunnel.ts";
import { type Exchange, bytesMoved, retryable, stallError } from "./http-exchange.ts";
import { beginsRequest, clientResponseHead, errorFor, interimResponseHead, isHeadRequest, lastHopAnswer, proxyAuthorized, routeRequest } from "./http-message.ts";
import { plainOutput } from "./http-plain.ts";
import { PlainForwardRequests, PlainRequest, PlainReverseRequests } from "./http-plain-request.ts";
import { PlainResponse } from "./http-plain-response.ts";
import { ResponseReader, type ResponseSink, after, concat } from "./http-response.ts";
import { connectTunnel, upgradeTunnel } from "./http-tunnel.ts";
import { Upstream } from "./http-upstream.ts";
import { PhaseClock } from "./phase-clock.ts";
import { nowMs } from "../clock.ts";

const EMPTY = new Uint8Array(0);

export class HttpSession implements ConnEvents, ResponseSink {
  private pending: Uint8Array = EMPTY;
  private readonly scan = new HeadScan();
  /** Responses are read one exchange at a time: one reader for all of them. */
  private reader: ResponseReader | null = null;
  private exchange: Exchange | null = null;
  private upstream: Upstream | null = null;
  /** One clock for the keep-alive idle, header and exchange deadlines (see PhaseClock). */
  private readonly clock = new PhaseClock<"idle" | "head" | "exchange">(
    (phase) => this.expired(phase),
    (err) => this.conn.fault(err, "timer"),
  );
  private clientEnded = false;
  /** Bytes queued toward the client when the idle deadline was armed: still delivering if it shrank. */
  private idleQueuedBytes = 0;
  private closed = false;
  private handedOff = false;
  /** The request being answered is a HEAD: an error answer to it has no content (RFC 9110 §9.3.2). */
  private answeringHead = false;
  private requests = 0;
  private termination: Termination | null = null;
  private error: ProxyError | undefined;
  private readonly verify: Verifier | null;
  /** Plain request heads are rewritten on bytes (http-plain-request.ts). */
  private readonly plainRequests: PlainReverseRequests | PlainForwardRequests;

  constructor(
    readonly ctx: ListenerContext,
    readonly conn: Conn,
    readonly rec: ConnRecord,
  ) {
    const auth = ctx.config.auth;
    // Proxy-Authorization is for forward proxies; a reverse listener serves any client it admits.
    this.verify = auth && ctx.workload === null ? createVerifier(auth) : null;
    this.plainRequests = ctx.workload !== null ? new PlainReverseRequests(conn.remoteAddress) : new PlainForwardRequests();
  }

  start(): void {
    this.conn.setEvents(this);
    this.rec.unsentDown = this.conn;
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
    if (ex && ex.requestBody) ex.clientBytes += chunk.byteLength;
    if (ex && ex.requestBody && ex.upstream) {
      this.relayRequestBody(ex, chunk);
      return;
    }
    this.pending = concat(this.pending, chunk);
    // Pipelined bytes wait for the current exchange (or behind the request parsed from them):
    // stop reading if they pile up, until exchanges have used them up (resumeClient).
    if (this.pending.byteLength > this.ctx.limits.maxBufferedBytes) this.conn.pause();
    if (ex) return;
    this.parseNext();
  }

  onEnd(): void {
    if (this.closed) return; // closing already: the adapter finishes the close
    this.clientEnded = true;
    const ex = this.exchange;
    if (ex?.upstream) this.bodyCutShort(ex);
    // A half-closed client still gets the response to what it sent (SPEC §4).
    if (!this.exchange) {
      if (this.pending.byteLength > 0) this.parseNext();
      if (!this.exchange && !this.closed) this.closeClient("client-fin");
    }
  }

  onDrain(): void {
    this.exchange?.upstream?.conn.resume();
    // The last response is delivered (to the kernel): the keep-alive idle runs from now.
    if (this.clock.phase === "idle") this.armIdle();
  }

  onClose(err?: Error): void {
    if (this.handedOff) return;
    this.closed = true;
    this.clearTimers();
    // The answer's tail was cut (lib/runtime/flush.ts): not the clean end closeClient expected.
    if (err instanceof FlushTimeout) this.termination = "flush-timeout";
    // bytesDown is what the client was sent: what was still queued when it closed (a cut, a
    // reset, a shutdown) never was. Running counts left it out already (tracker.ts runningBytesDown).
    this.rec.bytesDown -= this.conn.droppedBytes;
    if (this.exchange) this.termination ??= err ? "client-reset" : "client-close";
    // An upstream kept alive between requests gets a FIN; one in the middle of an exchange, a reset.
    this.dropUpstream(this.exchange !== null);
    this.rec.requests = this.requests;
    this.ctx.tracker.close(this.rec, faultTermination(err, this.termination ?? "client-fin"), this.error);
  }

  // ---- requests ----

  private parseNext(): void {
    if (this.pending.byteLength === 0 || this.exchange || this.closed) return;
    // The header deadline runs from the head's first byte, not from each byte.
    if (this.clock.phase !== "head") this.clock.set("head", this.ctx.limits.headerTimeoutMs);
    this.answeringHead = false; // an error in this head is no answer to an earlier HEAD
    let result;
    try {
      result = parseRequestHead(this.pending, this.ctx.limits, this.scan, this.plainRequests);
    } catch (err) {
      this.answeringHead = isHeadRequest(this.pending); // a HEAD's 400 / 414 / 431 has no content either
      return this.fail(asProxyError(err));
    }
    if (!result.ok) {
      // A FIN inside a request head: the client gave up on it (HAProxy's "CR"), nothing to
      // answer. Empty lines alone (a CRLF some clients send after a body) begin no request.
      if (this.clientEnded) this.closeClient(beginsRequest(this.pending) ? "client-aborted" : "client-fin");
      else this.conn.resume(); // the head's limits bound what this reads
      return;
    }
    this.clock.pause(); // dialling: the connect timeout rules
    const rest = after(this.pending, result.consumed);
    this.pending = EMPTY;
    if (this.requests++ === 0) this.ctx.tracker.handshakeDone(this.rec);
    this.handleRequest(result.head, rest);
  }

  private handleRequest(request: RequestHead, rest: Uint8Array): void {
    this.answeringHead = request.method === "HEAD";
    if (this.verify && !proxyAuthorized(request.headers, this.verify)) {
      return this.fail(new ProxyError("authFailed", "proxy authentication required"));
    }
    if ((request.method === "TRACE" || request.method === "OPTIONS") && this.answeredLastHop(request)) return;
    if (request.method === "CONNECT") return this.connectTunnel(request.authority!, rest);
    if (request instanceof PlainRequest) {
      const origin = request.origin; // forward: the one the target names; reverse: null
      const target = origin ?? this.ctx.workload!;
      return this.startExchange(request, rest, target, origin !== null ? origin.key : targetKey(this.ctx, target), null);
    }
    let routed;
    try {
      routed = routeRequest({ request, workload: this.ctx.workload, clientIp: this.conn.remoteAddress });
    } catch (err) {
      return this.fail(asProxyError(err));
    }
    this.startExchange(request, rest, routed.target, targetKey(this.ctx, routed.target), routed.head);
  }

  /**
   * A TRACE or OPTIONS with Max-Forwards: 0 is answered here (RFC 9110 §7.6.2), an invalid
   * Max-Forwards with 400. True when the request has been answered.
   */
  private answeredLastHop(request: RequestHead): boolean {
    let answer: Uint8Array | null;
    try {
      answer = lastHopAnswer(request);
    } catch (err) {
      this.fail(asProxyError(err));
      return true;
    }
    if (answer === null) return false;
    this.toClient(answer);
    this.closeClient("answered");
    return true;
  }

  /** The request goes to `target`: on the kept-alive upstream when it is the same one, else dialled. */
  private startExchange(request: RequestHead, rest: Uint8Array, target: DialTarget, key: string, upstreamHead: Uint8Array | null): void {
    this.rec.target = key;
    const ex: Exchange = {
      request,
      upstreamHead,
      target,
      targetKey: key,
      reused: false,
      requestBody: hasBody(request.framing) ? new BodyDecoder(request.framing, { maxTrailerBytes: this.ctx.limits.maxHeaderBytes }) : null,
      clientBytes: 0,
      upstream: null,
      response: this.readerFor(request),
      keepClient: request.keepAlive,
      reuseUpstream: false,
      movedSeenBytes: 0,
      stillChecks: 0,
    };
    this.exchange = ex;
    this.pending = rest;
    const idle = this.upstream;
    if (idle && idle.key === key && idle.usable()) {
      ex.reused = true;
      return this.useUpstream(ex, idle);
    }
    if (idle) this.dropUpstream(false);
    this.dialFor(ex);
  }

  /** Dials the exchange's target and sends the request on the new connection. */
  private dialFor(ex: Exchange): void {
    const key = ex.targetKey;
    const startedMs = nowMs();
    this.ctx.tracker.dialStarted(this.rec);
    dial(this.ctx.runtime, ex.target, this.ctx.dialOptions, (result) => {
      this.ctx.tracker.dialSettled(this.rec);
      try {
        if (result instanceof ProxyError) {
          if (this.exchange === ex) this.fail(result);
          return;
        }
        this.ctx.tracker.connected(this.rec, nowMs() - startedMs);
        if (this.closed || this.exchange !== ex) return result.destroy();
        this.useUpstream(ex, new Upstream(key, result));
      } catch (err) {
        // A bug (lib/fault.ts): the client connection is closed (`internal`), and the upstream.
        this.conn.fault(err, "connect");
        if (!(result instanceof ProxyError)) result.destroy();
      }
    });
  }

  /** The session is the reader's sink: only the current exchange's upstream reaches it. */
  private readerFor(request: RequestHead): ResponseReader {
    if (this.reader === null) return (this.reader = new ResponseReader(request, this.ctx.limits, this));
    this.reader.begin(request);
    return this.reader;
  }

  private useUpstream(ex: Exchange, upstream: Upstream): void {
    this.upstream = upstream;
    ex.upstream = upstream;
    upstream.attach(this);
    this.armExchangeTimer(ex);
    const request = ex.request;
    const body = ex.requestBody ? this.pending : EMPTY;
    // The client's FIN came while dialling: when what it sent cannot complete the body, nothing
    // is sent (400, the new connection reset), not a request the upstream would get cut short.
    if (this.clientEnded && ex.requestBody !== null && !ex.requestBody.completedBy(body) && this.bodyCutShort(ex)) return;
    if (body.byteLength > 0) {
      this.pending = EMPTY;
      const head = request instanceof PlainRequest ? request.upstreamHead : ex.upstreamHead!;
      this.relayRequestBody(ex, body, head); // head and body in one write
    } else if (request instanceof PlainRequest) {
      const size = request.upstreamHeadSize();
      const out = plainOutput(size);
      request.writeUpstreamHead(out);
      upstream.conn.writeFrom(out, 0, size);
    } else upstream.conn.write(ex.upstreamHead!);
    if (this.bodyCutShort(ex)) return;
    // Reading may have been paused while the dial was pending; resume unless the upstream is full.
    if (upstream.conn.queuedBytes < this.ctx.limits.maxBufferedBytes) this.resumeClient();
  }

  /** The exchange's inactivity limit (http-exchange.ts, lib/sweep.ts): its checks start over. */
  private armExchangeTimer(ex: Exchange): void {
    startStallChecks(ex, bytesMoved(ex, this.rec, this.conn.queuedBytes));
    this.clock.set("exchange", inactivityTickMs(this.ctx.limits.responseTimeoutMs));
  }

  /** The idle deadline of a connection that sent nothing passed before this session existed (http-front.ts). */
  idleExpired(): void {
    this.expired("idle");
  }

  private expired(phase: "idle" | "head" | "exchange"): void {
    if (this.closed || this.handedOff) return;
    // Keep-alive idle runs from the end of the response's delivery (nginx's keepalive_timeout):
    // a queue toward the client that shrank since the deadline was armed is still being read.
    if (phase === "idle") return this.conn.queuedBytes > 0 && this.conn.queuedBytes < this.idleQueuedBytes ? this.armIdle() : this.closeClient("idle-timeout");
    if (phase === "head") {
      this.answeringHead = isHeadRequest(this.pending);
      return this.fail(new ProxyError("headerTimeout", `request head not complete in ${this.ctx.limits.headerTimeoutMs} ms`));
    }
    const ex = this.exchange;
    if (!ex) return;
    if (stalled(ex, bytesMoved(ex, this.rec, this.conn.queuedBytes))) return this.fail(stallError(ex, this.ctx.limits.responseTimeoutMs, this.conn.queuedBytes));
    this.clock.set("exchange", inactivityTickMs(this.ctx.limits.responseTimeoutMs));
  }

  /** Relays what of `chunk` belongs to the request body; `head` goes out in the same write. */
  private relayRequestBody(ex: Exchange, chunk: Uint8Array, head?: Uint8Array): void {
    let used;
    try {
      used = ex.requestBody!.consume(chunk);
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
      if (used < chunk.byteLength) this.pending = concat(this.pending, after(chunk, used));
    }
  }

  /**
   * The client's FIN came while this request's body was still due (everything it sent has gone
   * to the upstream) and no response has begun: the body can never be whole. Answered 400 at
   * once, the upstream reset, rather than both waiting out --response-timeout (nginx drops the
   * upstream too: "client prematurely closed connection"). True when it ended the exchange.
   */
  private bodyCutShort(ex: Exchange): boolean {
    if (!this.clientEnded || this.exchange !== ex || ex.requestBody === null || ex.response.started) return false;
    this.fail(new ProxyError("protocol", "the client closed its side before the request body was complete"));
    return true;
  }

  /** The upstream drained: the client may send more request body. */
  upstreamDrained(): void {
    this.resumeClient();
  }

  /**
   * Reading from the client goes on unless pipelined requests already wait past
   * --max-buffered-bytes: each exchange consumes one of them, and resuming after each would let
   * every exchange read one more chunk (up to 512 KiB under Bun) while using up a few bytes.
   */
  private resumeClient(): void {
    if (this.pending.byteLength <= this.ctx.limits.maxBufferedBytes) this.conn.resume();
  }

  // ---- responses (called by Upstream) ----

  fromUpstream(chunk: Uint8Array): void {
    const ex = this.exchange;
    // Bytes from an idle kept-alive upstream answer nothing: it is out of step (its next bytes
    // could be read as the next request's response), so it is reset, as nginx closes it.
    if (!ex) return this.dropUpstream(true);
    ex.response.feed(chunk);
  }

  /** ResponseSink: the final head arrived; decide keep-alive on both sides, send it. */
  responseHead(response: ResponseHead, framing: BodyFraming, dechunk: boolean, body: Uint8Array, bodyStart: number, bodyEnd: number): void {
    const ex = this.exchange!;
    // A response that comes before the whole request body (an early 413, 401, ...) ends the
    // connection: the rest of that body must not be read as the next request.
    const bodyPending = ex.requestBody !== null;
    // A client that half-closed is still answered what it sent before its FIN: the connection is
    // kept while pipelined bytes wait, and this response is its last when none do.
    const lastFromClient = this.clientEnded && this.pending.byteLength === 0;
    ex.keepClient = ex.keepClient && !bodyPending && !lastFromClient && !this.ctx.draining() && framing.kind !== "close" && !dechunk;
    ex.reuseUpstream = response.keepAlive && framing.kind !== "close";
    const version = ex.request.version;
    if (response instanceof PlainResponse) {
      const size = response.clientHeadSize(version, ex.keepClient, bodyEnd - bodyStart);
      if (size >= 0) {
        const out = plainOutput(size);
        response.writeClientHead(out, version, ex.keepClient, body, bodyStart, bodyEnd);
        return this.toClientFrom(out, 0, size);
      }
    }
    this.toClient(clientResponseHead(response, version, ex.keepClient, body, bodyStart, bodyEnd));
  }

  /** ResponseSink: a 101; the connection becomes a tunnel (http-tunnel.ts). */
  responseUpgrade(response: ResponseHead, rest: Uint8Array): void {
    this.toClient(interimResponseHead(response));
    const up = this.exchange!.upstream!.conn;
    const clientBytes = this.pending;
    this.handOff();
    upgradeTunnel(this.ctx, this.rec, this.conn, up, clientBytes, rest, this.clientEnded);
  }

  responseDone(extra: Uint8Array): void {
    this.finishExchange(this.exchange!, extra);
  }

  /** ResponseSink: bytes for the client; a client that reads slowly pauses the upstream. */
  toClient(bytes: Uint8Array): void {
    this.rec.bytesDown += bytes.byteLength;
    this.conn.write(bytes);
    this.clientBackpressure();
  }

  /** toClient for buf[start, end) of a buffer that is reused once this returns (plainOutput). */
  private toClientFrom(buf: Uint8Array, start: number, end: number): void {
    this.rec.bytesDown += end - start;
    this.conn.writeFrom(buf, start, end);
    this.clientBackpressure();
  }

  private clientBackpressure(): void {
    if (this.conn.queuedBytes >= this.ctx.limits.maxBufferedBytes) this.exchange?.upstream?.conn.pause();
  }

  private finishExchange(ex: Exchange, extra: Uint8Array): void {
    this.exchange = null;
    this.clock.pause();
    const upstream = ex.upstream;
    // Only an upstream that finished both directions cleanly is reused. One that answered before
    // the whole request body is reset: the rest will never be sent, and what is queued for it
    // would wait on a socket nobody reads.
    if (upstream && (!ex.reuseUpstream || ex.requestBody !== null || extra.byteLength > 0)) {
      const abort = ex.requestBody !== null;
      if (this.upstream === upstream) this.dropUpstream(abort);
      else upstream.release(abort);
    } else upstream?.conn.resume();
    if (!ex.keepClient) return this.closeClient(this.clientEnded ? "client-fin" : "server-fin");
    this.resumeClient();
    this.armIdle();
    if (this.pending.byteLength > 0) this.parseNext();
    else if (this.clientEnded) this.closeClient("client-fin");
    // Shutting down: an exchange whose response began before the signal could not say
    // `Connection: close`; the idle connection is closed now, not held to the grace period's end.
    else if (this.ctx.draining()) this.closeClient("shutdown");
  }

  /** The upstream sent FIN or closed. */
  upstreamGone(err?: ProxyError, upstream?: Upstream): void {
    const ex = this.exchange;
    if (!ex || (upstream && ex.upstream !== upstream)) {
      // An idle kept-alive upstream sent its FIN (or closed): close our side too, or the socket
      // would sit half-closed (CLOSE_WAIT) for as long as the client stays.
      if (upstream && this.upstream === upstream) this.dropUpstream(false);
      return;
    }
    if (retryable(ex)) {
      // Once: the new connection is not `reused`, so a second close is answered as usual.
      ex.reused = false;
      ex.upstream = null;
      this.dropUpstream(true);
      return this.dialFor(ex);
    }
    // A socket error here is a reset (logged `server-reset`, as the relay does); a bug of ours
    // while handling the upstream's events stays `internal`.
    if (err) this.fail(err, err.kind === "internal" ? "internal" : "server-reset");
    else ex.response.end(); // read-until-close bodies end here; others were cut short
  }

  // ---- tunnels (http-tunnel.ts) ----

  private connectTunnel(authority: Authority, rest: Uint8Array): void {
    this.dropUpstream(false); // a kept-alive upstream of earlier requests is not the tunnel's
    this.handOff();
    connectTunnel(this.ctx, this.rec, this.conn, authority, rest, this.clientEnded);
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

  /** ResponseSink too: answers with an error response, or cuts the connection once a response has started. */
  fail(err: ProxyError, termination: Termination = terminationFor(err.kind)): void {
    if (this.closed) return;
    const started = this.exchange?.response.started ?? false;
    this.error = err;
    this.termination = termination;
    this.exchange = null;
    this.dropUpstream(true);
    if (started) return this.destroy(this.termination); // never a second status line
    this.toClient(errorFor(err, this.answeringHead));
    this.closeClient(this.termination);
  }

  /**
   * After a response, an error answer or an idle keep-alive: a lingering close, since the client
   * may still be sending (a body we answered early, a pipelined request, a request crossing our
   * idle close) and a reset would destroy response bytes it has not read (RFC 9112 §9.6).
   */
  private closeClient(termination: Termination): void {
    this.termination ??= termination;
    this.clearTimers();
    // Final: what the client still sends while the answer flushes (the rest of a body answered
    // early, a request after `Connection: close`) is read and dropped, never parsed as a request.
    this.closed = true;
    this.conn.endLingering();
  }

  private destroy(termination: Termination): void {
    this.termination ??= termination;
    this.closed = true; // as closeClient: nothing more is read, whenever the runtime reports the close
    this.dropUpstream(true);
    this.conn.destroy();
  }

  /** Lets go of the upstream connection (detached first: Upstream.release). */
  private dropUpstream(abort: boolean): void {
    const upstream = this.upstream;
    if (!upstream) return;
    this.upstream = null;
    upstream.release(abort);
  }

  private armIdle(): void {
    this.idleQueuedBytes = this.conn.queuedBytes;
    this.clock.set("idle", this.ctx.limits.idleTimeoutMs);
  }

  private clearTimers(): void {
    this.clock.stop();
  }
}
