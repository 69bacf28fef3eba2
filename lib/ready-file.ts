/**
 * `--ready-file`: the listener addresses, written once the proxy listens, for scripts that wait
 * for it (CI smoke tests); removed when it stops listening, so that no one finds a stale one.
 */
import { renameSync, rmSync, statSync, writeFileSync } from "node:fs";

/** The file we wrote, told apart from one another process wrote at the same path since. */
export interface ReadyFile {
  readonly path: string;
  /** Its inode: each write renames a new file into place, so a rewrite has another. */
  readonly ino: number;
}

/**
 * Written then renamed: a script polling for the file never reads half of it. The partial file
 * has an unguessable name and is created exclusively (O_EXCL: never through a symlink someone
 * planted there, which would make us overwrite its target), and is removed if the rename fails.
 */
export function writeReadyFile(file: string, addresses: unknown): ReadyFile {
  const random = new Uint8Array(8);
  (globalThis as unknown as { crypto: { getRandomValues(into: Uint8Array): Uint8Array } }).crypto.getRandomValues(random);
  const nonce = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  const partial = `${file}.${process.pid}.${nonce}.tmp`;
  try {
    writeFileSync(partial, JSON.stringify(addresses) + "\n", { flag: "wx", mode: 0o644 });
    const { ino } = statSync(partial);
    renameSync(partial, file);
    return { path: file, ino };
  } catch (err) {
    rmSync(partial, { force: true });
    throw new Error(`cannot write --ready-file ${JSON.stringify(file)}: ${errorMessage(err)}`);
  }
}

/**
 * Best effort: failing to remove it must not keep the process alive; the reason is returned to
 * log. A file another process has written there since (a proxy started in our place, on the same
 * path, while we drained) is theirs: left alone.
 */
export function removeReadyFile(file: ReadyFile): string | null {
  try {
    const now = statSync(file.path, { throwIfNoEntry: false });
    if (now !== undefined && now.ino === file.ino) rmSync(file.path, { force: true });
    return null;
  } catch (err) {
    return errorMessage(err);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
