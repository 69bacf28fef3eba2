/**
 * The checks of resolveConfig that look at several settings at once: ports and binds that
 * would collide at start-up, credentials no listener asks for, a workload that is one of the
 * proxy's own listeners. Each refusal is one ConfigError line naming every setting involved and
 * where it came from.
 */
import { dialledAddress, isIP, isMappedIPv4 } from "../address.ts";
import type { Config } from "../config.ts";
import { isLocalhostName, LOOPBACKS } from "../dial.ts";
import { parseIPv6 } from "../protocol/socks-address.ts";
import { ConfigError } from "./error.ts";
import { quote } from "../text.ts";
import { type Resolver, spec } from "./resolver.ts";

/**
 * Credentials no listener asks for are refused rather than silently unused: a reverse tcp
 * listener relays bytes it cannot authenticate, and a reverse http listener serves any client
 * it admits (Proxy-Authorization is for forward proxies). SOCKS asks on either side.
 */
export function checkAuthUsed(r: Resolver, config: Config): void {
  if (config.auth === null || config.forwardProtocol !== null || config.reverseProtocol === "socks") return;
  const raw = r.lookup(spec("auth")) ?? r.lookup(spec("auth-file"));
  const type = r.lookup(spec("proxy-type"));
  throw new ConfigError(
    `auth (from ${raw?.origin}) has no effect with proxy-type ${quote(config.proxyType)} from ${type?.origin} and a reverse ${config.reverseProtocol} listener: ` +
      "no listener would ask for it; allowed: auth with a forward listener (forward, dual) or reverse socks, or no auth",
  );
}

/**
 * The workload must not be one of the proxy's own listeners. The reverse listener itself: every
 * connection would be relayed back into the proxy, each taking two slots, until one client had
 * filled the listener. The forward listener: every client of the reverse listener (which binds
 * all interfaces by default) would get a forward proxy to any destination, an open relay (SPEC
 * §3: "a reverse listener is never an open relay"). The admin endpoint: /connections and
 * /metrics to anyone. Known only for a loopback or listed workload address (`localhost` and
 * names under `.localhost` are 127.0.0.1 and ::1); another name or one of the host's other
 * addresses cannot be checked here without DNS.
 */
export function checkWorkloadNotSelf(r: Resolver, config: Config): void {
  if (config.reverseProtocol === null) return;
  const own = ownListeners(config, { reverse: config.inPort, forward: config.outPort, admin: config.adminPort });
  const self = ownListenerAt(config.proxyHost, config.proxyPort, own);
  if (self === undefined) return;
  const { portFlag, bindFlag, what, why } = OWN_LISTENER[self.name];
  throw new ConfigError(
    `${said(r, "proxy-host")} and ${said(r, "proxy-port")} name ${what} (${said(r, portFlag)}, ${said(r, bindFlag)}): ${why}; allowed: the workload's own address and port`,
  );
}

export type OwnListenerName = "reverse" | "forward" | "admin";

/** One of the proxy's enabled listeners, as the workload could reach it: its port and binds. */
export interface OwnListener {
  readonly name: OwnListenerName;
  readonly port: number;
  readonly binds: readonly string[];
}

/** Each listener's flags and how its error names it and says why it may not be the workload. */
export const OWN_LISTENER: Readonly<Record<OwnListenerName, { readonly portFlag: string; readonly bindFlag: string; readonly what: string; readonly why: string }>> = {
  reverse: { portFlag: "proxy-in-port", bindFlag: "in-bind", what: "the reverse listener itself", why: "every connection would loop back into the proxy" },
  forward: { portFlag: "proxy-out-port", bindFlag: "out-bind", what: "the forward listener", why: "every client of the reverse listener could reach any destination through it (an open relay)" },
  admin: { portFlag: "admin-port", bindFlag: "admin-bind", what: "the admin endpoint", why: "every client of the reverse listener would reach /connections and /metrics" },
};

/** The configuration's enabled listeners on the given ports (configured, or bound: app.ts). */
export function ownListeners(config: Config, ports: { reverse: number; forward: number; admin: number | null }): OwnListener[] {
  const own: OwnListener[] = [];
  if (config.reverseProtocol !== null) own.push({ name: "reverse", port: ports.reverse, binds: config.inBind });
  if (config.forwardProtocol !== null) own.push({ name: "forward", port: ports.forward, binds: config.outBind });
  if (ports.admin !== null) own.push({ name: "admin", port: ports.admin, binds: [config.adminBind] });
  return own;
}

/**
 * The listener of `own` that `host:port` reaches, if any. Known only for a loopback or listed
 * address (`localhost` and names under `.localhost` are 127.0.0.1 and ::1); another name or one
 * of the host's other addresses cannot be checked without DNS. A wildcard bind covers the host's
 * own addresses, which only loopback names for certain; another address with a wildcard bind
 * may be a different host (the workload's).
 */
export function ownListenerAt(host: string, port: number, own: readonly OwnListener[]): OwnListener | undefined {
  const addresses = isLocalhostName(host) ? LOOPBACKS : isIP(host) !== 0 ? [reachedAddress(host)] : [];
  const loopsBack = (a: string, bind: string) => {
    const family = isIP(a);
    if (canonical(bind, family) === WILDCARD[family]) return family === 4 ? a.startsWith("127.") : canonical(a, 6) === canonical("::1", 6);
    return bindsOverlap(a, bind);
  };
  return own.find((listener) => listener.port === port && addresses.some((a) => listener.binds.some((b) => loopsBack(a, b))));
}

/**
 * The address a dial to an IP literal reaches, as dial.ts dials it: the unspecified address as
 * loopback (address.ts dialledAddress), an IPv4-mapped one in any spelling (::ffff:7f00:1) as
 * the IPv4 address it carries.
 */
function reachedAddress(literal: string): string {
  const address = dialledAddress(literal);
  const bytes = isIP(address) === 6 ? parseIPv6(address) : null;
  return bytes !== null && isMappedIPv4(bytes) ? bytes.subarray(12).join(".") : address;
}

/** An enabled listener as a port collision message names it: its port and bind options. */
interface PortUse {
  readonly portFlag: string;
  readonly bindFlag: string;
  readonly port: number;
  readonly binds: readonly string[];
}

/** `key "value" from source`, as error messages name a setting; `value` names one address of a bind list. */
function said(r: Resolver, flag: string, value?: string): string {
  const raw = r.lookup(spec(flag));
  return `${flag} ${quote(value ?? raw?.text ?? "")} from ${raw?.origin}`;
}

/**
 * Two enabled listeners (reverse, forward, admin) on one port must not bind overlapping
 * addresses, or the second bind fails at start-up with EADDRINUSE: refused here, naming both.
 * Port 0 never collides (the OS picks a free port for each listener). Neither may the addresses
 * of one listener overlap, whatever its port: they all share one port (with 0, the first
 * address's).
 */
export function checkPortCollisions(r: Resolver, config: Config): void {
  const uses: PortUse[] = [];
  if (config.reverseProtocol) uses.push({ portFlag: "proxy-in-port", bindFlag: "in-bind", port: config.inPort, binds: config.inBind });
  if (config.forwardProtocol) uses.push({ portFlag: "proxy-out-port", bindFlag: "out-bind", port: config.outPort, binds: config.outBind });
  if (config.adminPort !== null) uses.push({ portFlag: "admin-port", bindFlag: "admin-bind", port: config.adminPort, binds: [config.adminBind] });
  for (const use of uses) {
    use.binds.forEach((a, i) => {
      const b = use.binds.slice(0, i).find((x) => bindsOverlap(a, x));
      if (b === undefined) return;
      throw new ConfigError(
        `${said(r, use.bindFlag)}: ${quote(a)} overlaps ${quote(b)}, and a listener binds all its addresses on one port; allowed: addresses that do not overlap (0.0.0.0 already covers every IPv4 address, :: every IPv6 one)`,
      );
    });
  }
  uses.forEach((later, i) => {
    for (const earlier of uses.slice(0, i)) {
      if (later.port === 0 || later.port !== earlier.port) continue;
      for (const a of later.binds) {
        const b = earlier.binds.find((x) => bindsOverlap(a, x));
        if (b === undefined) continue;
        throw new ConfigError(
          `${said(r, later.portFlag)} conflicts with ${said(r, earlier.portFlag)}: ${said(r, later.bindFlag, a)} overlaps ${said(r, earlier.bindFlag, b)}; allowed: different ports (0 = any free port) or binds that do not overlap`,
        );
      }
    }
  });
}

const WILDCARD: Readonly<Record<number, string>> = { 4: "0.0.0.0", 6: "[::]" };

/**
 * Whether binding both addresses on one port collides: the same address (IPv6 compared in its
 * canonical form), or a wildcard and any address of its family. `::` covers IPv6 only: the Bun
 * adapter binds it IPv6-only, which is why the default in-bind `0.0.0.0,::` shares one port.
 */
function bindsOverlap(a: string, b: string): boolean {
  const family = isIP(a);
  if (family !== isIP(b)) return false;
  const [ca, cb] = [canonical(a, family), canonical(b, family)];
  return ca === cb || ca === WILDCARD[family] || cb === WILDCARD[family];
}

/** IPv4 as written (validated); IPv6 as its 16 bytes in hex (any spelling, mixed notation too). */
function canonical(address: string, family: number): string {
  if (family === 4) return address;
  const bytes = parseIPv6(address);
  if (bytes === null) return address; // validated as IPv6 already; kept as is rather than thrown
  const hex = Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
  return /^0+$/.test(hex) ? WILDCARD[6]! : hex;
}
