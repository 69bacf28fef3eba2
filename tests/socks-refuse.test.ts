/**
 * The SOCKS driver's refusal over the connection cap (lib/listeners/socks.ts refuse), in-process
 * with scripted connections: a SOCKS4 request gets CD 0x5B and a lingering close, anything else
 * a close; at most REFUSED_READS_MAX refused clients wait for their first bytes at once. The
 * e2e side (a real proxy, SOCKS4 and SOCKS5 clients) is in limits.e2e.test.ts.
 */
import { expect, test } from "bun:test";
import { REFUSED_READS_MAX } from "../lib/limits.ts";
import { socksDriver } from "../lib/listeners/socks.ts";
import { ScriptedConn } from "./helpers/fake-conn.ts";

const SOCKS4_CONNECT = Uint8Array.of(0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0x00);
const SOCKS5_GREETING = Uint8Array.of(0x05, 0x01, 0x00);

test("SOCKS4: CD 0x5B then a lingering close; SOCKS5: a lingering close without a byte; at most REFUSED_READS_MAX wait at once", () => {
  const waiting = Array.from({ length: REFUSED_READS_MAX }, () => new ScriptedConn());
  for (const conn of waiting) socksDriver.refuse(conn);
  expect(waiting.every((c) => c.calls.length === 0 && c.events !== null)).toBe(true);

  const over = new ScriptedConn();
  socksDriver.refuse(over);
  expect(over.calls).toEqual(["end"]); // past the budget: closed at once

  const [socks4, socks5, fin] = waiting;
  socks4!.events!.onData(SOCKS4_CONNECT);
  expect([...socks4!.written[0]!]).toEqual([0x00, 0x5b, 0, 0, 0, 0, 0, 0]);
  expect(socks4!.calls).toEqual(["endLingering"]);
  socks5!.events!.onData(SOCKS5_GREETING);
  expect(socks5!.written).toEqual([]);
  expect(socks5!.calls).toEqual(["endLingering"]);
  fin!.events!.onEnd();
  expect(fin!.calls).toEqual(["end"]);

  // Three places came free: three more refused clients wait, the next is closed at once.
  const more = [new ScriptedConn(), new ScriptedConn(), new ScriptedConn(), new ScriptedConn()];
  for (const conn of more) socksDriver.refuse(conn);
  expect(more.map((c) => c.calls)).toEqual([[], [], [], ["end"]]);

  for (const conn of [...waiting.slice(3), ...more.slice(0, 3)]) conn.destroy(); // gives every place back
  const after = new ScriptedConn();
  socksDriver.refuse(after);
  expect(after.calls).toEqual([]);
  after.destroy();
});
