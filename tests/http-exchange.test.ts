/**
 * The HTTP exchange's inactivity limit (lib/listeners/http-exchange.ts) as a pure sequence of
 * checks: the session checks every quarter of --response-timeout, and the exchange ends once
 * four checks in a row saw no byte move. So it ends between 1 and 1.25 times the limit after
 * the last byte moved, never later (re-arming the whole limit whenever a byte had moved, as
 * before, let a stall last up to twice the limit).
 */
import { describe, expect, test } from "bun:test";
import { type Exchange, stallError } from "../lib/listeners/http-exchange.ts";
import { stalled, startStallChecks } from "../lib/sweep.ts";

function freshExchange(moved: number): Exchange {
  const ex = { movedSeenBytes: 0, stillChecks: 0 } as Exchange;
  startStallChecks(ex, moved);
  return ex;
}

/** The index of the first check that ends the exchange, given `moved` at each check; -1: none. */
function endsAt(startMoved: number, samples: number[]): number {
  const ex = freshExchange(startMoved);
  return samples.findIndex((moved) => stalled(ex, moved));
}

describe("the exchange's stall checks", () => {
  test("nothing moves after dispatch: ends at the fourth check, exactly the limit", () => {
    expect(endsAt(10, [10, 10, 10, 10, 10])).toBe(3);
  });

  test("a byte moved just after dispatch: ends four checks after the one that saw it (1.25x the limit at most)", () => {
    // Checks 0..: the head arrived between dispatch and check 0, then nothing.
    expect(endsAt(10, [50, 50, 50, 50, 50, 50])).toBe(4);
  });

  test("bytes moving between every pair of checks never end it", () => {
    const samples = Array.from({ length: 40 }, (_, i) => 10 + i);
    expect(endsAt(10, samples)).toBe(-1);
  });

  test("three still checks, then a byte: the count starts again", () => {
    expect(endsAt(0, [0, 0, 0, 5, 5, 5, 5, 5, 5])).toBe(7);
  });

  test("starting again (a new exchange on the same connection) forgets earlier still checks", () => {
    const ex = freshExchange(0);
    expect([stalled(ex, 0), stalled(ex, 0), stalled(ex, 0)]).toEqual([false, false, false]);
    startStallChecks(ex, 7);
    expect([stalled(ex, 7), stalled(ex, 7), stalled(ex, 7), stalled(ex, 7)]).toEqual([false, false, false, true]);
  });
});

describe("stallError: who stopped", () => {
  const exchange = (fields: { response: boolean; body: boolean; waiting: number }) =>
    ({
      response: { response: fields.response ? {} : null },
      requestBody: fields.body ? {} : null,
      upstream: { conn: { queuedBytes: fields.waiting } },
    }) as unknown as Exchange;

  test("a request body that stopped coming is the client's (408); one the upstream stopped reading is the upstream's (504)", () => {
    expect(stallError(exchange({ response: false, body: true, waiting: 0 }), 300, 0).kind).toBe("bodyTimeout");
    const upstream = stallError(exchange({ response: false, body: true, waiting: 65_536 }), 300, 0);
    expect(upstream.kind).toBe("upstreamTimeout");
    expect(upstream.message).toContain("65536 bytes waiting toward it");
    expect(stallError(exchange({ response: false, body: false, waiting: 0 }), 300, 0).kind).toBe("upstreamTimeout");
    expect(stallError(exchange({ response: true, body: true, waiting: 10 }), 300, 0).kind).toBe("upstreamTimeout");
  });

  test("a response the client stopped reading is the client's (clientTimeout); one that stopped coming is the upstream's", () => {
    const client = stallError(exchange({ response: true, body: false, waiting: 0 }), 300, 70_000);
    expect(client.kind).toBe("clientTimeout");
    expect(client.message).toContain("70000 bytes waiting toward it");
    expect(stallError(exchange({ response: true, body: false, waiting: 0 }), 300, 0).kind).toBe("upstreamTimeout");
  });
});
