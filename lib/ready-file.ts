/**
 * `--ready-file`: the listener addresses, written once the proxy listens, for scripts that wait
 * for it (CI smoke tests); removed when it stops listening, so that no one finds a stale one.
 */
import { renameSync, rmSync, writeFileSync } from "node:fs";

/**
 * Written then renamed: a script polling for the file never reads half of it. The partial file
 * has an unguessable name and is created exclusively (O_EXCL: never through a symlink someone
 * planted there, which would make us overwrite its target), and is removed if the rename fails.
 */
export function writeReadyFile(file: string, addresses: unknown): void {
  const random = new Uint8Array(8);
  (globalThis as unknown as { crypto: { getRandomValues(into: Uint8Array): Uint8Array } }).crypto.getRandomValues(random);
  const nonce = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  const partial = `${file}.${process.pid}.${nonce}.tmp`;
  try {
    writeFileSync(partial, JSON.stringify(addresses) + "\n", { flag: "wx", mode: 0o644 });
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new Error(`cannot write --ready-file ${JSON.stringify(file)}: ${errorMessage(err)}`);
  }
}

/** Best effort: failing to remove it must not keep the process alive; the reason is returned to log. */
export function removeReadyFile(file: string): string | null {
  try {
    rmSync(file, { force: true });
    return null;
  } catch (err) {
    return errorMessage(err);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
