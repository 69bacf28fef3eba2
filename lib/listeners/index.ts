/** Protocol name -> driver. */
import type { ProtocolDriver } from "../tunnel.ts";
import { httpDriver } from "./http-front.ts";
import { socksDriver } from "./socks.ts";
import { tcpDriver } from "./tcp.ts";

const DRIVERS: Record<string, ProtocolDriver> = {
  tcp: tcpDriver,
  socks: socksDriver,
  http: httpDriver,
};

export function driverFor(protocol: string): ProtocolDriver {
  const driver = DRIVERS[protocol];
  if (!driver) throw new Error(`no driver for protocol ${protocol}`);
  return driver;
}
