/**
 * --ready-file's removal at exit (lib/ready-file.ts): ours goes, a successor's stays, even when
 * the file system gives the successor's file the inode number ours had (ext4 reuses a freed one
 * at once: an audit saw our removal take the successor's file 20 times in 20).
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { removeReadyFile, writeReadyFile } from "../lib/ready-file.ts";

const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-ready-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("ours is removed; a file written at the path since (removed, then written anew, 20 times) is left alone", () => {
  const path = join(dir, "ready.json");
  const ours = writeReadyFile(path, { forward: [] });
  expect(removeReadyFile(ours)).toBeNull();
  expect(existsSync(path)).toBe(false);

  for (let i = 0; i < 20; i++) {
    const mine = writeReadyFile(path, { forward: [{ address: "127.0.0.1", port: 1 }] });
    rmSync(path); // a wrapper clears the stale file before starting the next proxy
    writeFileSync(`${path}.next`, `successor ${i}\n`);
    renameSync(`${path}.next`, path);
    expect(removeReadyFile(mine)).toBeNull();
    expect(readFileSync(path, "utf8")).toBe(`successor ${i}\n`);
    rmSync(path);
  }
});

test("a file someone else removed: nothing to do, no error", () => {
  const path = join(dir, "gone.json");
  const ours = writeReadyFile(path, {});
  rmSync(path);
  expect(removeReadyFile(ours)).toBeNull();
});
