/**
 * The code a configuration needs beyond the core, loaded before the server starts: each module
 * costs start-up time to evaluate, so a TCP-only proxy without admin never evaluates the HTTP
 * parsers (bench/RESULTS.md has the measurements).
 */
import type { startAdmin } from "./admin.ts";
import type { Config } from "./config.ts";
import { loadDriver } from "./listeners/index.ts";
import type { AddressMatcher } from "./policy.ts";
import type { ProtocolDriver } from "./tunnel.ts";

export interface Matchers {
  readonly allow: AddressMatcher | null;
  readonly deny: AddressMatcher | null;
}

export interface Modules {
  /** A driver for each configured listener protocol. */
  readonly drivers: ReadonlyMap<string, ProtocolDriver>;
  /** lib/admin.ts, when the admin listener is on. */
  readonly startAdmin: typeof startAdmin | null;
  readonly matchers: Matchers;
}

export async function loadModules(config: Config): Promise<Modules> {
  const protocols = [config.reverseProtocol, config.forwardProtocol].filter((p): p is NonNullable<typeof p> => p !== null);
  const drivers = new Map<string, ProtocolDriver>();
  for (const protocol of protocols) if (!drivers.has(protocol)) drivers.set(protocol, await loadDriver(protocol));
  return {
    drivers,
    startAdmin: config.adminPort !== null ? (await import("./admin.ts")).startAdmin : null,
    matchers: await loadMatchers(config),
  };
}

/** lib/policy.ts (and ip-address) only when --allow-clients or --deny-destinations is set. */
async function loadMatchers(config: Config): Promise<Matchers> {
  if (config.allowClients.length === 0 && config.denyDestinations.length === 0) return { allow: null, deny: null };
  const { createMatcher } = await import("./policy.ts");
  return {
    allow: config.allowClients.length > 0 ? createMatcher(config.allowClients) : null,
    deny: config.denyDestinations.length > 0 ? createMatcher(config.denyDestinations) : null,
  };
}
