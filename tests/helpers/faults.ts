/**
 * What lib/fault.ts reports, collected for a test's assertions instead of going to the log.
 */
import { type FaultSite, onFault } from "../../lib/fault.ts";

export interface ReportedFault {
  readonly err: unknown;
  readonly site: FaultSite;
}

/** Runs `body` with every reported fault pushed onto its argument; the previous sink is back after. */
export async function collectingFaults<T>(body: (faults: ReportedFault[]) => T | Promise<T>): Promise<T> {
  const faults: ReportedFault[] = [];
  const previous = onFault((err, site) => void faults.push({ err, site }));
  try {
    return await body(faults);
  } finally {
    onFault(previous);
  }
}
