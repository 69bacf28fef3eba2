/**
 * `--ready-file`: the listener addresses, written once the proxy listens, for scripts that wait
 * for it (CI smoke tests); removed when it stops listening, so that no one finds a stale one.
 */
import { closeSync, fstatSync, openSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";

/**
 * The file we wrote, told apart from one another process wrote at the same path since by its
 * inode, which we keep open until we remove the file: a file system such as ext4 hands a freed
 * inode number to the next file at once (an audit: with the number alone, a successor written
 * after ours had been removed had our number, and we removed it), but not one still open.
 */
export interface ReadyFile {
  readonly path: string;
  readonly fd: number;
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
    renameSync(partial, file);
  } catch (err) {
    rmSync(partial, { force: true });
    throw new Error(`cannot write --ready-file ${JSON.stringify(file)}: ${errorMessage(err)}`);
  }
  try {
    return { path: file, fd: openSync(file, "r") };
  } catch (err) {
    rmSync(file, { force: true }); // start-up fails: no file may say it is listening
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
    const ours = fstatSync(file.fd);
    const there = statSync(file.path, { throwIfNoEntry: false });
    if (there !== undefined && there.ino === ours.ino && there.dev === ours.dev) rmSync(file.path, { force: true });
    return null;
  } catch (err) {
    return errorMessage(err);
  } finally {
    closeSync(file.fd);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
