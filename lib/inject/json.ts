import { ConfigError } from "../config.ts";

/** The JSON a manifest is, as inject walks it. */
export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The object at `path` under `root`; ConfigError naming the first missing step. */
export function objectAt(root: Json, path: readonly string[], what: string): Json {
  let node: unknown = root;
  for (let i = 0; i < path.length; i++) {
    node = isObject(node) ? node[path[i]!] : undefined;
    if (!isObject(node)) throw new ConfigError(`${what} has no ${path.slice(0, i + 1).join(".")} object`);
  }
  return node as Json;
}

/** `list` with `item` in place of the element of the same name, or appended. */
export function upsertByName(list: unknown, item: Json, what: string): unknown[] {
  if (list !== undefined && !Array.isArray(list)) throw new ConfigError(`${what} is not a list`);
  const out = [...((list as unknown[] | undefined) ?? [])];
  const at = out.findIndex((e) => isObject(e) && e.name === item.name);
  if (at === -1) out.push(item);
  else out[at] = item;
  return out;
}
