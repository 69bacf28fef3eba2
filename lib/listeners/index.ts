/**
 * Protocol name -> driver, loaded on demand: a configuration that names only `tcp` never
 * evaluates the SOCKS and HTTP modules (start-up time, bench/RESULTS.md).
 */
import type { ProtocolDriver } from "../tunnel.ts";

const LOADERS: Record<string, () => Promise<ProtocolDriver>> = {
  tcp: async () => (await import("./tcp.ts")).tcpDriver,
  socks: async () => (await import("./socks.ts")).socksDriver,
  http: async () => (await import("./http-front.ts")).httpDriver,
};

export async function loadDriver(protocol: string): Promise<ProtocolDriver> {
  const load = LOADERS[protocol];
  if (!load) throw new Error(`no driver for protocol ${protocol}`);
  return load();
}
