/**
 * Aggregation and markdown for a bench run: per table (one mode variant), per contestant, the
 * median over rounds with min/max, the ratio to `direct` and to the best peer of the same kind.
 */

export interface Sample {
  /** The table's metric (rate, MiB/s, KiB per tunnel, ms). */
  value: number;
  p50Us?: number;
  p99Us?: number;
  /** Proxy CPU per unit of work, in the table's cpuUnit. */
  cpu?: number;
  /** Peak RSS of the proxy's process tree (sum of VmHWM), KiB. */
  hwmKib?: number;
  errors: number;
  /** Not errors, worth a footnote (e.g. a proxy closing keep-alive connections). */
  note?: string;
  firstError?: string;
}

export interface Row {
  readonly key: string; // "direct" or "group:id"
  /** Rows of one group are compared with each other (best peer); null for `direct`. */
  readonly group: string | null;
  /** What the kind column shows. */
  readonly label: string;
  readonly id: string;
  readonly ours: boolean;
  /** A yardstick (bun-floor, sidecar-proxy-tcp): shown, never the best peer. */
  readonly reference: boolean;
  readonly samples: Sample[];
}

export interface Table {
  readonly key: string;
  readonly title: string;
  readonly unit: string;
  readonly higherIsBetter: boolean;
  readonly cpuUnit: string | null;
  readonly latency: boolean;
  readonly rows: Row[];
  /**
   * An absolute target of issue #7 for this table (start-up: under 25 ms). The standings score
   * against it instead of the best peer: the peers of this table are of other kinds.
   */
  readonly target?: { readonly value: number; readonly label: string };
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function fmt(x: number | undefined, digits?: number): string {
  if (x === undefined || !Number.isFinite(x)) return "—";
  const d = digits ?? (Math.abs(x) >= 1000 ? 0 : Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function medianOf(samples: Sample[], pick: (s: Sample) => number | undefined): number | undefined {
  const xs = samples.map(pick).filter((x): x is number => x !== undefined && Number.isFinite(x));
  return xs.length ? median(xs) : undefined;
}

/** Only samples without errors count; a contestant with no clean sample has no value. */
function clean(row: Row): Sample[] {
  return row.samples.filter((s) => s.errors === 0 && Number.isFinite(s.value));
}

export function rowMedian(row: Row): number | undefined {
  return medianOf(clean(row), (s) => s.value);
}

/** Best peer (not ours, not a reference, not direct) of a group. */
export function bestPeer(table: Table, group: string): { id: string; value: number } | null {
  let best: { id: string; value: number } | null = null;
  for (const row of table.rows) {
    if (row.group !== group || row.ours || row.reference) continue;
    const v = rowMedian(row);
    if (v === undefined) continue;
    if (!best || (table.higherIsBetter ? v > best.value : v < best.value)) best = { id: row.id, value: v };
  }
  return best;
}

export function renderTable(table: Table): string {
  const direct = table.rows.find((r) => r.key === "direct");
  const directValue = direct ? rowMedian(direct) : undefined;
  const head = [`kind`, `contestant`, `median ${table.unit}`, `min–max`, `× direct`, `× best peer`];
  if (table.latency) head.push("p50 µs", "p99 µs");
  if (table.cpuUnit) head.push(`proxy CPU ${table.cpuUnit}`);
  head.push("peak RSS MiB", "rounds", "errors");
  const lines = [`### ${table.title} (${table.higherIsBetter ? "higher" : "lower"} is better)`, "", `| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  const notes: string[] = [];
  for (const row of table.rows) {
    const ok = clean(row);
    const v = rowMedian(row);
    const values = ok.map((s) => s.value);
    const best = row.group ? bestPeer(table, row.group) : null;
    const errors = row.samples.reduce((a, s) => a + s.errors, 0);
    const name = row.ours ? `**${row.id}**` : row.id;
    const cells = [
      row.label,
      name,
      row.ours ? `**${fmt(v)}**` : fmt(v),
      values.length ? `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}` : "—",
      directValue && v !== undefined ? `${fmt(v / directValue, 2)}` : "—",
      best && v !== undefined ? (row.ours ? `**${fmt(v / best.value, 2)}**` : fmt(v / best.value, 2)) : "—",
    ];
    if (table.latency) cells.push(fmt(medianOf(ok, (s) => s.p50Us), 0), fmt(medianOf(ok, (s) => s.p99Us), 0));
    if (table.cpuUnit) cells.push(fmt(medianOf(ok, (s) => s.cpu)));
    const hwm = medianOf(ok, (s) => s.hwmKib);
    cells.push(hwm === undefined ? "—" : fmt(hwm / 1024, 1), `${ok.length}/${row.samples.length}`, errors ? `⚠ ${errors}` : "0");
    lines.push(`| ${cells.join(" | ")} |`);
    const firstError = row.samples.find((s) => s.firstError)?.firstError;
    if (firstError) notes.push(`${row.id} (${row.label}): ${firstError}`);
    const note = row.samples.find((s) => s.note)?.note;
    if (note) notes.push(`${row.id} (${row.label}): ${note}`);
  }
  if (notes.length) lines.push("", ...notes.map((n) => `- ${n}`));
  return lines.join("\n");
}

/** sidecar-proxy against the best peer of each kind (or the table's target), worst first; score < 1 means it trails. */
export function standings(tables: Table[]): string {
  const out: Array<{ score: number; line: string }> = [];
  for (const table of tables) {
    const groups = new Set(table.rows.map((r) => r.group).filter((g): g is string => g !== null));
    for (const group of groups) {
      const ours = table.rows.find((r) => r.group === group && r.ours);
      const best = table.target ? { id: table.target.label, value: table.target.value } : bestPeer(table, group);
      const v = ours ? rowMedian(ours) : undefined;
      if (!ours || !best || v === undefined) continue;
      const score = table.higherIsBetter ? v / best.value : best.value / v;
      const verdict = table.target
        ? score >= 1 ? "meets the target" : "misses the target"
        : score >= 1 ? "leads" : score > 0.995 ? "trails by <1%" : `trails by ${fmt((1 - score) * 100, 0)}%`;
      out.push({ score, line: `| ${table.title} | ${ours.label} | ${fmt(v)} | ${best.id} ${fmt(best.value)} | ${fmt(score, 2)} | ${verdict} |` });
    }
  }
  out.sort((a, b) => a.score - b.score);
  return [
    "| table | kind | sidecar-proxy | best peer (or target) | score (≥1 = at or ahead) | |",
    "|---|---|---|---|---|---|",
    ...out.map((o) => o.line),
  ].join("\n");
}
