/**
 * The workload's proxy variables: what a forward listener means for the other containers' env
 * (HTTP_PROXY etc. pointing at it, NO_PROXY keeping loopback direct), and what an earlier
 * injection set that this one must take back.
 */
import { type Config, ConfigError } from "../config.ts";
import { quote } from "../text.ts";
import { type Json, isObject } from "./json.ts";

/** The variables inject sets that send traffic somewhere (NO_PROXY only keeps it direct). */
const PROXY_URL_VARS = new Set(["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]);
const NO_PROXY_VARS = new Set(["NO_PROXY", "no_proxy"]);
/** A proxy URL inject writes: the sidecar's forward listener on loopback. */
const SIDECAR_PROXY_URL = /^(?:http|socks5h):\/\/127\.0\.0\.1:\d{1,5}$/;
const LOOPBACK_NO_PROXY = ["localhost", "127.0.0.1", "::1"];

export type EnvVars = ReadonlyArray<readonly [string, string]>;

/**
 * Proxy variables for the workload: both spellings, because curl reads only the lower-case
 * http_proxy (httpoxy) while Go, Python and most others read either. NO_PROXY keeps loopback
 * direct (the reverse path and the sidecar itself live there).
 */
export function proxyEnv(config: Config): EnvVars {
  if (config.forwardProtocol === null) return [];
  const vars: Array<[string, string]> = [];
  if (config.forwardProtocol === "http") {
    const url = `http://127.0.0.1:${config.outPort}`;
    vars.push(["HTTP_PROXY", url], ["HTTPS_PROXY", url]);
  } else {
    // socks5h: the proxy resolves names. Go's net/http reads only HTTP(S)_PROXY: set those to this URL by hand for Go.
    vars.push(["ALL_PROXY", `socks5h://127.0.0.1:${config.outPort}`]);
  }
  vars.push(["NO_PROXY", LOOPBACK_NO_PROXY.join(",")]);
  return [...vars, ...vars.map(([k, v]): [string, string] => [k.toLowerCase(), v])];
}

/**
 * Sets each variable by name. NO_PROXY / no_proxy keep the workload's own entries (from either
 * spelling, so both end up equal) followed by the loopback ones. A name listed twice is one the
 * kubelet takes the last of: that one is read and set; earlier ones stay as they are (a
 * `$(NO_PROXY)` between them refers to the earlier one).
 */
export function setEnv(container: Json, vars: EnvVars, what: string): void {
  if (vars.length === 0) return;
  if (container.env !== undefined && !Array.isArray(container.env)) throw new ConfigError(`${what}: env of container ${quote(String(container.name))} is not a list`);
  const env = (container.env ??= []) as unknown[];
  const valueOf = (name: string) => {
    const e = env.findLast((x) => isObject(x) && x.name === name) as Json | undefined;
    return typeof e?.value === "string" ? e.value : "";
  };
  const noProxy: string[] = [];
  for (const item of `${valueOf("NO_PROXY")},${valueOf("no_proxy")}`.split(",")) {
    const s = item.trim();
    if (s !== "" && !noProxy.includes(s)) noProxy.push(s);
  }
  for (const [name, value] of vars) {
    const merged = name.toLowerCase() === "no_proxy" ? [...noProxy, ...value.split(",").filter((v) => !noProxy.includes(v))].join(",") : value;
    const last = env.findLastIndex((e) => isObject(e) && e.name === name);
    if (last === -1) env.push({ name, value: merged });
    else env[last] = { name, value: merged };
  }
}

/**
 * Before this injection's variables are set: the proxy URLs an earlier injection wrote (they
 * would point at a listener that may be gone: a switch to reverse, or from http to socks) are
 * removed. A proxy URL of the workload's own, or one set from a ConfigMap or Secret, is refused
 * when the sidecar's forward listener would take its place: the sidecar dials destinations
 * itself and cannot chain to that proxy, so which one the workload should use is the user's
 * call. A NO_PROXY from a ConfigMap or Secret cannot be merged: refused too.
 */
export function clearProxyEnv(container: Json, injectedBefore: boolean, vars: EnvVars, what: string): void {
  if (!Array.isArray(container.env)) return;
  const name = quote(String(container.name));
  const forwarding = vars.length > 0;
  const kept = container.env.filter((e) => {
    if (!isObject(e) || typeof e.name !== "string") return true;
    const isUrl = PROXY_URL_VARS.has(e.name);
    if (!isUrl && !NO_PROXY_VARS.has(e.name)) return true;
    if (typeof e.value !== "string") {
      if (!forwarding && isUrl) return true;
      throw new ConfigError(`${what}: container ${name} sets ${e.name} from ${e.valueFrom === undefined ? "nothing" : "valueFrom"}, which inject cannot ${isUrl ? "replace" : "merge with the sidecar's entries"}; give it a value, or remove it`);
    }
    if (!isUrl) return true; // setEnv merges it
    // Ours from before: kept in place when set again (setEnv overwrites it), else removed.
    if (injectedBefore && SIDECAR_PROXY_URL.test(e.value)) return vars.some(([n]) => n === e.name);
    if (vars.some(([n, v]) => n === e.name && v === e.value)) return true; // already what it gets
    if (forwarding) throw new ConfigError(`${what}: container ${name} sets ${e.name}=${e.value}, which the sidecar's forward listener would replace (it dials destinations itself, it cannot chain to that proxy); remove the variable, or use proxy-type reverse`);
    return true;
  });
  if (kept.length > 0) container.env = kept;
  else delete container.env;
}
