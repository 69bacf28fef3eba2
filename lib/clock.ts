/**
 * The clock of every deadline and duration: monotonic milliseconds (`performance.now()`), so a
 * step of the wall clock (NTP or chrony stepping it, a VM resumed) neither fires timeouts early
 * nor holds them off, and durations never come out negative, as Envoy, HAProxy and nginx time
 * them. Wall-clock time (`Date`) is only for the timestamps of log lines. Same cost as
 * Date.now() here (~32 ns a call under Bun 1.4.4).
 */
export function nowMs(): number {
  return performance.now();
}
