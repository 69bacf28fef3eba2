/**
 * SPEC §6 shutdown: /readyz turns 503 at once, listeners keep serving for the drain delay,
 * tunnels opened before the signal complete within the grace period, the rest are cut, exit 0;
 * a second signal exits at once. Each step waits on an observable event (a log line, a socket
 * event), never on a sleep, so none of these depend on timing.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectionsOf, until } from "./helpers/hardening.ts";
import { RawClient, echoServer } from "./helpers/net.ts";
import { stalledPort } from "./helpers/origins.ts";
import { killAll, startProxy } from "./helpers/proxy.ts";

const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-shutdown-"));
afterAll(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

function reverseTcp(workloadPort: number, extra: string[]) {
  return startProxy(["--proxy-type", "reverse", "--proxy-protocol", "tcp", "--proxy-host", "127.0.0.1", "--proxy-port", String(workloadPort), ...extra]);
}

async function echoRoundTrip(client: RawClient, text: string): Promise<void> {
  const before = client.receivedBytes;
  await client.write(text);
  await client.waitFor(() => client.receivedBytes >= before + text.length, 10_000, `echo of ${text}`);
}

describe("shutdown", () => {
  test("a tunnel opened before SIGTERM completes after the listeners close; exit 0 with a summary", async () => {
    const echo = echoServer();
    const proxy = await reverseTcp(echo.port, ["--drain-delay", "0", "--grace-period", "1m"]);
    const client = await RawClient.connect(proxy.ports.reverse!);
    await echoRoundTrip(client, "before;");
    proxy.signal("SIGTERM");
    await proxy.waitForLog((l) => l.msg === "listeners closed", 10_000, "listeners closed");
    // New connections are no longer accepted...
    const refused = await RawClient.connect(proxy.ports.reverse!).then(
      () => false,
      () => true,
    );
    expect(refused).toBe(true);
    // ...but the open tunnel still works both ways, then ends cleanly.
    await echoRoundTrip(client, "after;");
    client.halfClose();
    await client.waitFor(() => client.gotFin, 10_000, "FIN");
    expect(client.text()).toBe("before;after;");
    expect(await proxy.exited).toBe(0);
    const summary = proxy.logs.find((l) => l.msg === "stopped");
    expect(summary).toBeDefined();
    expect(summary!.connections).toBe(1);
    expect(summary!.bytesUp).toBe("before;after;".length);
    echo.stop();
  });

  test("during the drain delay /readyz is 503 and listeners still serve; a second signal exits at once", async () => {
    const echo = echoServer();
    const proxy = await reverseTcp(echo.port, ["--drain-delay", "1h"]);
    const readyz = () => fetch(`http://127.0.0.1:${proxy.ports.admin}/readyz`).then((r) => r.status);
    expect(await readyz()).toBe(200);
    proxy.signal("SIGTERM");
    await proxy.waitForLog((l) => l.msg === "draining", 10_000, "draining");
    expect(await readyz()).toBe(503);
    const client = await RawClient.connect(proxy.ports.reverse!);
    await echoRoundTrip(client, "still serving");
    proxy.signal("SIGTERM");
    expect(await proxy.exited).toBe(1);
    echo.stop();
  });

  test("SIGHUP is logged and ignored: tunnels, probes and the ready file stay; SIGTERM still drains and exits 0", async () => {
    const echo = echoServer();
    const readyFile = join(dir, "hup.ready");
    const proxy = await reverseTcp(echo.port, ["--drain-delay", "0", "--ready-file", readyFile]);
    const client = await RawClient.connect(proxy.ports.reverse!);
    await echoRoundTrip(client, "before HUP;");
    proxy.signal("SIGHUP");
    await proxy.waitForLog((l) => l.msg === "signal ignored" && l.signal === "SIGHUP", 10_000, "the SIGHUP line");
    await echoRoundTrip(client, "after HUP;");
    expect((await fetch(`http://127.0.0.1:${proxy.ports.admin}/readyz`)).status).toBe(200);
    expect(existsSync(readyFile)).toBe(true);
    client.close();
    proxy.signal("SIGTERM");
    expect(await proxy.exited).toBe(0);
    echo.stop();
  });

  test("a second signal (exit 1) removes the ready file too", async () => {
    const readyFile = join(dir, "second-signal.ready");
    const proxy = await startProxy(["--proxy-type", "forward", "--drain-delay", "1h", "--ready-file", readyFile]);
    proxy.signal("SIGTERM");
    // start() writes the file before it returns, so before any signal is handled.
    await proxy.waitForLog((l) => l.msg === "draining", 10_000, "draining");
    expect(existsSync(readyFile)).toBe(true);
    proxy.signal("SIGTERM");
    expect(await proxy.exited).toBe(1);
    expect(existsSync(readyFile)).toBe(false);
  });

  test("a ready file another process wrote at the same path since (a proxy started in our place) is left alone at exit", async () => {
    const readyFile = join(dir, "taken-over.ready");
    const proxy = await startProxy(["--proxy-type", "forward", "--drain-delay", "1h", "--ready-file", readyFile]);
    proxy.signal("SIGTERM");
    await proxy.waitForLog((l) => l.msg === "draining", 10_000, "draining");
    // The successor writes its file as the proxy does: a new file renamed into place.
    writeFileSync(`${readyFile}.next`, "{\"forward\":[]}\n");
    renameSync(`${readyFile}.next`, readyFile);
    proxy.signal("SIGTERM");
    expect(await proxy.exited).toBe(1);
    expect(readFileSync(readyFile, "utf8")).toBe("{\"forward\":[]}\n");
  });

  test("HTTP: a connection that has sent nothing yet is closed when the listeners close, long before the grace period", async () => {
    const proxy = await startProxy(["--proxy-type", "forward", "--proxy-protocol", "http", "--drain-delay", "0", "--grace-period", "1h"]);
    const silent = await RawClient.connect(proxy.ports.forward!);
    await until(() => connectionsOf(proxy), (v) => v.active.length === 1, 10_000, "the proxy to list the connection");
    proxy.signal("SIGTERM");
    await silent.waitFor(() => silent.closed || silent.gotFin, 10_000, "the silent connection to be closed");
    expect(silent.receivedBytes).toBe(0);
    expect(await proxy.exited).toBe(0);
    const line = proxy.logs.find((l) => l.msg === "connection");
    expect(line?.termination).toBe("shutdown");
  });

  test("HTTP keep-alive: an exchange whose response began before the signal ends, then the connection is closed, not held to the grace period", async () => {
    // An origin that answers the head and half the body at once, the rest when told.
    let answering: import("bun").Socket | null = null;
    const origin = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(socket) {
          answering = socket;
          socket.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
        },
      },
    });
    const proxy = await startProxy(["--proxy-type", "forward", "--proxy-protocol", "http", "--drain-delay", "0", "--grace-period", "1h"]);
    const client = await RawClient.connect(proxy.ports.forward!);
    await client.write(`GET http://127.0.0.1:${origin.port}/ HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
    await client.waitFor(() => client.text().endsWith("12345"), 10_000, "the response head and half its body");
    expect(client.text()).not.toContain("Connection: close"); // it began as a kept-alive response
    proxy.signal("SIGTERM");
    await proxy.waitForLog((l) => l.msg === "listeners closed", 10_000, "listeners closed");
    answering!.write("67890");
    await client.waitFor(() => client.gotFin || client.closed, 10_000, "the connection to be closed once the response is complete");
    expect(client.text()).toEndWith("\r\n\r\n1234567890");
    expect(await proxy.exited).toBe(0);
    expect(proxy.logs.find((l) => l.msg === "connection")?.termination).toBe("shutdown");
    origin.stop(true);
  });

  test("SOCKS: a connection still in its handshake when the grace period ends is cut and logged as shutdown", async () => {
    const proxy = await startProxy(["--proxy-type", "forward", "--proxy-protocol", "socks", "--drain-delay", "0", "--grace-period", "200ms", "--handshake-timeout", "1h"]);
    const client = await RawClient.connect(proxy.ports.forward!);
    await client.write(new Uint8Array([5, 1, 0])); // the greeting, then no request
    await client.waitFor(() => client.receivedBytes === 2, 10_000, "the method choice");
    proxy.signal("SIGTERM");
    expect(await proxy.exited).toBe(0);
    await client.waitFor(() => client.closed || client.gotFin, 10_000, "client to be cut");
    const line = proxy.logs.find((l) => l.msg === "connection");
    expect(line?.termination).toBe("shutdown");
    expect(line?.bytesUp).toBe(3);
  });

  test("a connection still dialling when the grace period ends is cut and logged as shutdown", async () => {
    const stalled = await stalledPort(); // a destination whose connect never completes
    const proxy = await reverseTcp(stalled.port, ["--drain-delay", "0", "--grace-period", "200ms", "--connect-timeout", "1h"]);
    const client = await RawClient.connect(proxy.ports.reverse!);
    await until(() => connectionsOf(proxy), (v) => v.active.length === 1, 10_000, "the proxy to list the dialling connection");
    proxy.signal("SIGTERM");
    expect(await proxy.exited).toBe(0);
    await client.waitFor(() => client.closed || client.gotFin, 10_000, "client to be cut");
    const line = proxy.logs.find((l) => l.msg === "connection");
    expect(line?.termination).toBe("shutdown");
    stalled.stop();
  });

  test("connections still open after the grace period are cut and the process exits 0", async () => {
    const echo = echoServer();
    const proxy = await reverseTcp(echo.port, ["--drain-delay", "0", "--grace-period", "200ms"]);
    const client = await RawClient.connect(proxy.ports.reverse!);
    await echoRoundTrip(client, "x");
    proxy.signal("SIGINT");
    expect(await proxy.exited).toBe(0);
    await client.waitFor(() => client.closed || client.gotFin, 10_000, "client to be cut");
    expect(proxy.logs.some((l) => l.msg === "connection" && l.termination === "shutdown")).toBe(true);
    // In the order things happened: the cut is announced, the cut connection logged, then "stopped".
    const order = proxy.logs.map((l) => l.msg).filter((m) => m === "grace period over: connections cut" || m === "connection" || m === "stopped");
    expect(order).toEqual(["grace period over: connections cut", "connection", "stopped"]);
    echo.stop();
  });
});
