/**
 * ProxyServer binding a listener on port 0 at several addresses (lib/app.ts bindGroup, lib/bind.ts), with a
 * fake runtime: the first address picks the port and the others share it; when that port is
 * already in use on another address (any other socket on the host), the attempt is let go and
 * the first address picks again. CI met it: the proxy's 127.0.0.1 got a port a test server held
 * on ::1, and the proxy exited "EADDRINUSE". No socket is opened here.
 */
import { expect, test } from "bun:test";
import { ProxyServer } from "../lib/app.ts";
import { loadModules } from "../lib/modules.ts";
import { ABANDONED_CONNECTS_MAX, LINGER_MAX_SOCKETS } from "../lib/limits.ts";
import { setLingerBudget } from "../lib/runtime/linger.ts";
import { abandonedConnectBudget, setAbandonedConnectBudget } from "../lib/runtime/pending-connect.ts";
import { resolveConfig } from "../lib/config.ts";
import type { Fields, Logger } from "../lib/log.ts";
import type { Listener, ListenOptions, Runtime } from "../lib/runtime/types.ts";

function quietLogger(): Logger & { lines: Array<{ msg: string; fields?: Fields }> } {
  const lines: Array<{ msg: string; fields?: Fields }> = [];
  const at = (msg: string, fields?: Fields) => void lines.push({ msg, fields });
  return { lines, level: 3, droppedLines: 0, error: at, warn: at, info: at, debug: at } as Logger & { lines: typeof lines };
}

/** Port 0 hands out `picks` in turn; `taken` ports refuse any address but the first. */
function fakeRuntime(picks: number[], taken: Set<number>) {
  const stopped: string[] = [];
  const bound: string[] = [];
  const runtime = {
    name: "bun",
    fdLimit: () => 1 << 20,
    listen(options: ListenOptions): Listener {
      const port = options.port === 0 ? picks.shift()! : options.port;
      if (options.port !== 0 && taken.has(port)) throw Object.assign(new Error("address already in use"), { code: "EADDRINUSE" });
      bound.push(`${options.hostname}:${port}`);
      return { hostname: options.hostname, port, stop: () => void stopped.push(`${options.hostname}:${port}`) };
    },
  } as unknown as Runtime;
  return { runtime, stopped, bound };
}

test("port 0 on two addresses: a port in use on the second is given up and another picked; a fixed port in use stays fatal", async () => {
  const { config } = resolveConfig({
    flags: { "proxy-type": "forward", "proxy-protocol": "socks", "proxy-out-port": "0", "out-bind": "127.0.0.1,::1", "no-admin": true },
    env: {},
    readFile: () => "",
    stdoutIsTTY: false,
  });
  const modules = await loadModules(config);
  const { runtime, stopped, bound } = fakeRuntime([40001, 40002], new Set([40001]));
  const log = quietLogger();
  const server = new ProxyServer(config, runtime, log, modules);
  server.start();
  expect(bound).toEqual(["127.0.0.1:40001", "127.0.0.1:40002", "::1:40002"]);
  expect(stopped).toEqual(["127.0.0.1:40001"]);
  expect(log.lines.filter((l) => l.msg === "listening").map((l) => `${l.fields!.address}:${l.fields!.port}`)).toEqual(["127.0.0.1:40002", "::1:40002"]);

  const fixed = resolveConfig({
    flags: { "proxy-type": "forward", "proxy-protocol": "socks", "proxy-out-port": "40001", "out-bind": "127.0.0.1,::1", "no-admin": true },
    env: {},
    readFile: () => "",
    stdoutIsTTY: false,
  }).config;
  const again = fakeRuntime([], new Set([40001]));
  expect(() => new ProxyServer(fixed, again.runtime, quietLogger(), modules).start()).toThrow("address already in use");
});

test("a host without IPv6: the default binds' IPv6 address is skipped with a warning; the same address given by the operator is fatal (it was skipped too)", async () => {
  const configWith = (flags: Record<string, string | boolean>) =>
    resolveConfig({ flags: { "proxy-type": "forward", "proxy-protocol": "socks", "proxy-out-port": "0", "no-admin": true, ...flags }, env: {}, readFile: () => "", stdoutIsTTY: false }).config;
  const noIPv6 = () => {
    const { runtime, bound } = fakeRuntime([40001], new Set());
    const listen = runtime.listen.bind(runtime);
    runtime.listen = (options) => {
      if (options.hostname.includes(":")) throw Object.assign(new Error("cannot assign requested address"), { code: "EADDRNOTAVAIL" });
      return listen(options);
    };
    return { runtime, bound };
  };
  const defaults = configWith({});
  const modules = await loadModules(defaults);
  const quiet = noIPv6();
  const log = quietLogger();
  new ProxyServer(defaults, quiet.runtime, log, modules).start();
  expect(quiet.bound).toEqual(["127.0.0.1:40001"]);
  expect(log.lines.filter((l) => l.msg.startsWith("IPv6 address skipped")).map((l) => l.fields!.address)).toEqual(["::1"]);

  const listed = configWith({ "out-bind": "127.0.0.1,::1" }); // the default's very value, given by a flag
  expect(() => new ProxyServer(listed, noIPv6().runtime, quietLogger(), modules).start()).toThrow("EADDRNOTAVAIL");
});

test("a very low fd limit (ulimit -n 70) still lets dials run: the abandoned connects' budget is at least one (it was 0, and every dial was refused as over it)", async () => {
  const config = resolveConfig({ flags: { "proxy-type": "forward", "proxy-protocol": "socks", "proxy-out-port": "0", "no-admin": true }, env: {}, readFile: () => "", stdoutIsTTY: false }).config;
  const { runtime } = fakeRuntime([40001, 40002], new Set());
  (runtime as { fdLimit: () => number }).fdLimit = () => 70;
  try {
    new ProxyServer(config, runtime, quietLogger(), await loadModules(config)).start();
    expect(abandonedConnectBudget()).toBe(1);
  } finally {
    setAbandonedConnectBudget(ABANDONED_CONNECTS_MAX);
    setLingerBudget(LINGER_MAX_SOCKETS);
  }
});

test("a port-0 listener given the workload's port (the workload not listening yet) stops start-up naming it, instead of looping every connection back in", async () => {
  const configWith = (flags: Record<string, string | boolean>) =>
    resolveConfig({ flags: { "proxy-host": "127.0.0.1", "proxy-port": "40001", "in-bind": "127.0.0.1", "no-admin": true, ...flags }, env: {}, readFile: () => "", stdoutIsTTY: false }).config;
  const reverse = configWith({ "proxy-type": "reverse", "proxy-protocol": "tcp", "proxy-in-port": "0" });
  const modules = await loadModules(reverse);
  const given = fakeRuntime([40001], new Set());
  expect(() => new ProxyServer(reverse, given.runtime, quietLogger(), modules).start()).toThrow(
    "the reverse listener itself was given port 40001 (proxy-in-port 0), the workload's (proxy-host 127.0.0.1, proxy-port 40001): every connection would loop back into the proxy",
  );
  // Another port: served as before.
  const other = fakeRuntime([40002], new Set());
  new ProxyServer(reverse, other.runtime, quietLogger(), modules).start();
  expect(other.bound).toEqual(["127.0.0.1:40002"]);

  // The forward listener of a dual proxy given it: every reverse client would have an open relay.
  const dual = configWith({ "proxy-type": "dual", "proxy-protocol": "tcp:socks", "proxy-in-port": "40000", "proxy-out-port": "0", "out-bind": "127.0.0.1" });
  const dualModules = await loadModules(dual);
  expect(() => new ProxyServer(dual, fakeRuntime([40001], new Set()).runtime, quietLogger(), dualModules).start()).toThrow("the forward listener was given port 40001 (proxy-out-port 0)");
});
