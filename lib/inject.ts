/**
 * `sidecar-proxy inject`: adds the sidecar to a Kubernetes workload according to its pod
 * template's `sidecar.speedscale.com/*` annotations (SPEC §2), like `istioctl kube-inject`.
 * Pure: a parsed manifest in, a new manifest out; proxy.ts reads the file and prints the result.
 *
 * Input is JSON only (`kubectl get deploy NAME -o json`, `kubectl create ... --dry-run=client
 * -o json`): reading YAML would need a YAML dependency in a binary that otherwise has no use for
 * one. One object with a pod template: a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
 * CronJob, or a bare Pod; or a List of objects, whose workloads are injected and whose other
 * items pass through; another kind is refused.
 *
 * What is added (deploy/example.yaml is this output for deploy/workload.json, annotated):
 * - a `sidecar-proxy` container: `--annotations /etc/podinfo/annotations --admin-bind 0.0.0.0`,
 *   the reverse and admin ports, readiness `/readyz` and liveness `/healthz` on the admin port.
 *   By default it is a native sidecar (Kubernetes 1.29+): the first init container, with
 *   `restartPolicy: Always` and a startup probe on `/readyz`, so the kubelet starts the other
 *   init containers and the workload only once every listener is bound, and stops the sidecar
 *   only after the workload has exited (its last outbound calls still go through; a Job's pod
 *   completes). `--sidecar container` adds it as a regular container instead, for older clusters;
 * - a downward-API volume with `metadata.annotations`, mounted read-only at /etc/podinfo, so the
 *   running sidecar reads the same annotations this command validated;
 * - when there is a forward listener, the proxy variables on every other container, and on the
 *   other init containers when the sidecar is native (they start after it; a regular sidecar
 *   container starts after them);
 * - `terminationGracePeriodSeconds` at least drain delay + grace period + a margin.
 *
 * Idempotent: the container, the volume and each variable are matched by name and replaced, so
 * injecting an injected workload changes nothing (re-injecting after an annotation change updates
 * in place, and with the other `--sidecar` moves the sidecar). What the user added to the sidecar
 * (args, env, mounts, resources, securityContext values) is kept; proxy URLs an earlier injection
 * set that this one does not are removed; a workload's own proxy settings are refused, not
 * overwritten (clearProxyEnv). Invalid input throws ConfigError with one line; annotation errors
 * are the ones the sidecar itself would print at start-up, from resolveConfig.
 */
import { type Config, ConfigError, resolveConfig } from "./config.ts";
import { quote } from "./config/error.ts";
import { ANNOTATION_PREFIX, OPTIONS } from "./config/options.ts";
import { RELEASE_IMAGE } from "./version.ts";

export const SIDECAR_NAME = "sidecar-proxy";
export const PODINFO_VOLUME = "sidecar-proxy-podinfo";
export const PODINFO_DIR = "/etc/podinfo";
export const ANNOTATIONS_PATH = `${PODINFO_DIR}/annotations`;
/**
 * Kubelet probes come from the node to the pod IP, so a loopback-only admin endpoint cannot be
 * probed with httpGet, and an exec probe needs a shell or client the distroless image does not
 * have. The admin endpoint therefore listens on all IPv4 addresses (on an IPv6-only cluster,
 * `inject --admin-bind ::`); /metrics and /connections become reachable from the pod network:
 * restrict that with a NetworkPolicy if it matters.
 */
export const ADMIN_BIND = "0.0.0.0";
/** The variables inject sets that send traffic somewhere (NO_PROXY only keeps it direct). */
const PROXY_URL_VARS = new Set(["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"]);
const NO_PROXY_VARS = new Set(["NO_PROXY", "no_proxy"]);
/** A proxy URL inject writes: the sidecar's forward listener on loopback. */
const SIDECAR_PROXY_URL = /^(?:http|socks5h):\/\/127\.0\.0\.1:\d{1,5}$/;
const LOOPBACK_NO_PROXY = ["localhost", "127.0.0.1", "::1"];
/** Seconds added to drain + grace so the kubelet's SIGKILL never lands on a clean shutdown. */
const TERMINATION_MARGIN_S = 5;

const SIDECAR_KINDS = ["native", "container"] as const;

export interface InjectOptions {
  /** Sidecar image; this release's (RELEASE_IMAGE, lib/version.ts) when omitted. */
  readonly image?: string;
  /** `native` (default): a restartable init container; `container`: a regular container. */
  readonly sidecar?: string;
  /** The admin endpoint's address (ADMIN_BIND when omitted; `::` on an IPv6-only cluster). */
  readonly adminBind?: string;
  /** The admin endpoint's port, when the workload uses 4100 itself. */
  readonly adminPort?: string;
}

/** Where each accepted kind keeps its pod template; a Pod is its own. */
const POD_TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  ReplicaSet: ["spec", "template"],
  Job: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
  Pod: [],
};
const KINDS_TEXT = "a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod";
/** Pods meant to complete: a regular sidecar container never exits, so they would not. */
const RUN_TO_COMPLETION = new Set(["Job", "CronJob"]);
const COMPLETING_RESTART_POLICIES = new Set(["Never", "OnFailure"]);
/** The native sidecar's start-up probe: the workload starts once this passes (30 s to bind). */
const STARTUP_PERIOD_S = 1;
const STARTUP_FAILURES = 30;

type Json = Record<string, unknown>;

/** Parses the input text; `name` is how the input is called in messages (a path or "stdin"). */
export function parseManifest(text: string, name: string): unknown {
  if (text.trim() === "") throw new ConfigError(`${name} is empty; inject reads one workload as JSON, e.g. kubectl get deploy NAME -o json | sidecar-proxy inject`);
  try {
    // A byte-order mark (editors on Windows write one) is not JSON.
    return JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const yaml = /^\s*(apiVersion|kind|---)/.test(text) ? " (this looks like YAML)" : "";
    throw new ConfigError(`${name} is not JSON${yaml}: ${why}; inject reads JSON only, e.g. kubectl get deploy NAME -o json | sidecar-proxy inject`);
  }
}

/** The workload with the sidecar added. Throws ConfigError on invalid input. */
export function inject(manifest: unknown, options: InjectOptions = {}): Json {
  const image = options.image ?? RELEASE_IMAGE;
  if (image === "") throw new ConfigError("invalid --image \"\": empty; allowed: an image reference");
  const kindOfSidecar = options.sidecar ?? "native";
  if (!(SIDECAR_KINDS as readonly string[]).includes(kindOfSidecar)) {
    throw new ConfigError(`invalid --sidecar ${quote(kindOfSidecar)}; allowed: native (an init container with restartPolicy Always, Kubernetes 1.29+), container (a regular container)`);
  }
  if (!isObject(manifest)) throw new ConfigError(`input is ${manifest === null ? "null" : Array.isArray(manifest) ? "a JSON array" : typeof manifest}, not a workload object (${KINDS_TEXT})`);
  try {
    return injectInput(manifest, image, kindOfSidecar, options);
  } catch (err) {
    // A manifest nested thousands deep exhausts the stack of structuredClone: one line, exit 2.
    if (err instanceof RangeError) throw new ConfigError(`input cannot be copied (${err.message}): nested far deeper than any Kubernetes object`);
    throw err;
  }
}

function injectInput(manifest: Json, image: string, kindOfSidecar: string, options: InjectOptions): Json {
  // A List (`kubectl get deploy -o json` without a name): each workload in it is injected, any
  // other object (a Service, a ConfigMap) passes through as it is, as `linkerd inject` does.
  if (manifest.kind === "List" || (typeof manifest.kind === "string" && manifest.kind.endsWith("List") && Array.isArray(manifest.items))) {
    if (!Array.isArray(manifest.items)) throw new ConfigError("input is a List without an items array");
    const items = manifest.items.map((item) => {
      if (!isObject(item) || typeof item.kind !== "string") return item;
      if (Object.hasOwn(POD_TEMPLATE_PATHS, item.kind)) return injectOne(item, image, kindOfSidecar, options);
      return item.kind.endsWith("List") && Array.isArray(item.items) ? injectInput(item, image, kindOfSidecar, options) : item; // a List in a List
    });
    return { ...structuredClone(manifest), items };
  }
  return injectOne(manifest, image, kindOfSidecar, options);
}

function injectOne(manifest: Json, image: string, kindOfSidecar: string, options: InjectOptions): Json {
  const native = kindOfSidecar === "native";
  const out = structuredClone(manifest) as Json;
  const kind = out.kind;
  const templatePath = typeof kind === "string" && Object.hasOwn(POD_TEMPLATE_PATHS, kind) ? POD_TEMPLATE_PATHS[kind]! : null;
  if (templatePath === null) {
    throw new ConfigError(`input is ${typeof kind === "string" ? `a ${kind}` : "not a Kubernetes object (no kind)"}, not ${KINDS_TEXT} or a List of them`);
  }
  const meta = isObject(out.metadata) ? out.metadata : {};
  const what = `${(kind as string).toLowerCase()}/${typeof meta.name === "string" ? meta.name : "?"}`;
  const template = objectAt(out, templatePath, what); // a Pod (empty path) is its own template
  const where = templatePath.join(".");
  const at = where === "" ? "" : `${where}.`; // prefix of the pod template's paths in messages
  const podMeta = (template.metadata ??= {}) as Json;
  if (!isObject(podMeta)) throw new ConfigError(`${what}: ${at}metadata is not an object`);
  const podSpec = objectAt(template, ["spec"], where === "" ? what : `${what} ${where}`);
  const containers = podSpec.containers;
  if (!Array.isArray(containers) || containers.length === 0 || !containers.every(isObject)) {
    throw new ConfigError(`${what} has no containers in ${at}spec.containers`);
  }
  if (!native && (RUN_TO_COMPLETION.has(kind as string) || COMPLETING_RESTART_POLICIES.has(podSpec.restartPolicy as string))) {
    throw new ConfigError(`${what}: --sidecar container would keep its pods from completing (a regular container runs until it is stopped); use --sidecar native (Kubernetes 1.29+)`);
  }
  const inits = podSpec.initContainers;
  if (inits !== undefined && (!Array.isArray(inits) || !inits.every(isObject))) throw new ConfigError(`${what}: ${at}spec.initContainers is not a list of containers`);

  if (where !== "") checkOuterAnnotations(meta.annotations, podMeta.annotations, what, at);
  // An earlier injection's sidecar: what the user added to it is kept (sidecarContainer), the
  // admin address and port it was given stay unless given again, and the proxy URLs it gave the
  // containers are dropped before this configuration's are set.
  const previous = [...(containers as Json[]), ...((inits as Json[] | undefined) ?? [])].find((c) => c.name === SIDECAR_NAME) ?? null;
  const adminBind = options.adminBind ?? argValue(previous, "--admin-bind") ?? ADMIN_BIND;
  const adminPort = options.adminPort ?? argValue(previous, "--admin-port");
  const config = configFromAnnotations(podMeta.annotations, what, at, adminBind, adminPort);
  // Each list loses its old sidecar (either kind), and the new one goes where its kind belongs:
  // a native sidecar first, so every other init container starts after it.
  const workload = (containers as Json[]).filter((c) => c.name !== SIDECAR_NAME);
  const initList = (inits as Json[] | undefined) ?? [];
  const otherInits = initList.filter((c) => c.name !== SIDECAR_NAME);
  if (workload.length === 0) throw new ConfigError(`${what} has no containers besides ${SIDECAR_NAME} in ${at}spec.containers`);
  // Regular init containers have exited before a regular sidecar container starts.
  checkPorts(native ? [...workload, ...otherInits] : workload, config, what);

  const vars = proxyEnv(config);
  // A regular sidecar starts after the init containers: they get no proxy URLs (a native one's
  // would point at nothing). NO_PROXY stays (loopback entries never send anything anywhere).
  const proxied = native ? [...workload, ...otherInits] : workload;
  for (const c of [...workload, ...otherInits]) clearProxyEnv(c, previous !== null, proxied.includes(c) ? vars : [], what);
  if (previous !== null) checkKeptSettings(previous, what);
  const sidecar = sidecarContainer(config, image, native, adminBind, adminPort, previous);
  if (native) {
    podSpec.containers = workload;
    podSpec.initContainers = [sidecar, ...otherInits];
  } else {
    const old = (containers as Json[]).findIndex((c) => c.name === SIDECAR_NAME);
    podSpec.containers = old === -1 ? [...workload, sidecar] : (containers as Json[]).map((c) => (c.name === SIDECAR_NAME ? sidecar : c));
    // A native sidecar from an earlier injection moves out; an empty list it leaves goes too.
    if (otherInits.length < initList.length) {
      if (otherInits.length > 0) podSpec.initContainers = otherInits;
      else delete podSpec.initContainers;
    }
  }
  for (const c of proxied) setEnv(c, vars, what);
  const volumes = podSpec.volumes;
  if (Array.isArray(volumes)) {
    const clash = volumes.find((v) => isObject(v) && v.name === PODINFO_VOLUME && !isObject(v.downwardAPI));
    if (clash) throw new ConfigError(`${what}: ${at}spec.volumes has a volume named ${PODINFO_VOLUME} that is not the sidecar's downward-API volume; rename it`);
  }
  podSpec.volumes = upsertByName(volumes, podinfoVolume(), `${what} ${at}spec.volumes`);
  const needS = Math.ceil((config.limits.drainDelayMs + config.limits.gracePeriodMs) / 1000) + TERMINATION_MARGIN_S;
  const current = podSpec.terminationGracePeriodSeconds;
  if (typeof current !== "number" || current < needS) podSpec.terminationGracePeriodSeconds = needS;
  return out;
}

/**
 * The configuration the sidecar will run with: the pod template's annotations (as the kubelet
 * would write them to the downward-API file) plus the sidecar's own flags, through resolveConfig,
 * so an invalid annotation reads exactly as at start-up.
 */
function configFromAnnotations(annotations: unknown, what: string, at: string, adminBind: string, adminPort: string | undefined): Config {
  if (annotations !== undefined && !isObject(annotations)) throw new ConfigError(`${what}: ${at}metadata.annotations is not an object`);
  const lines: string[] = [];
  for (const [key, value] of Object.entries(annotations ?? {})) {
    if (!key.startsWith(ANNOTATION_PREFIX)) continue;
    if (typeof value !== "string") throw new ConfigError(`${what}: annotation ${key} is ${JSON.stringify(value)}; annotation values are strings (quote it)`);
    // JSON string escapes are a subset of what Go's strconv.Unquote reads (lib/config/annotations.ts).
    lines.push(`${key}=${JSON.stringify(value)}`);
  }
  const file = at === "" ? `the annotations of ${what}` : `the pod template of ${what}`;
  return resolveConfig({
    flags: { annotations: file, "admin-bind": adminBind, ...(adminPort === undefined ? {} : { "admin-port": adminPort }) },
    env: {},
    readFile: () => lines.join("\n"),
    stdoutIsTTY: false,
  }).config;
}

/**
 * `sidecar.speedscale.com/*` annotations on the workload object itself (`kubectl annotate
 * deploy`) do not reach its pods, whose annotations the sidecar reads: refused unless the pod
 * template says the same, rather than injecting the defaults while the user sees their keys.
 */
function checkOuterAnnotations(outer: unknown, pod: unknown, what: string, at: string): void {
  if (!isObject(outer)) return;
  const inPod = isObject(pod) ? pod : {};
  for (const [key, value] of Object.entries(outer)) {
    if (key.startsWith(ANNOTATION_PREFIX) && inPod[key] !== value) {
      throw new ConfigError(`${what}: annotation ${key} is on the ${what.split("/")[0]}'s own metadata, which its pods do not get; the sidecar reads its pod's: put it in ${at}metadata.annotations`);
    }
  }
}

/** The sidecar's listeners share the pod's network namespace with every container. */
function checkPorts(containers: Json[], config: Config, what: string): void {
  const ours: Array<[number | null, string]> = [
    [config.reverseProtocol ? config.inPort : null, "proxy-in-port"],
    [config.forwardProtocol ? config.outPort : null, "proxy-out-port"],
    [config.adminPort, "admin port (--admin-port)"],
  ];
  for (const [port, name] of ours) {
    if (port === 0) throw new ConfigError(`${what}: ${name} 0 (any free port) cannot be injected: the Service and the workload need a fixed port; allowed: 1-65535`);
  }
  for (const c of containers) {
    if (!Array.isArray(c.ports)) continue;
    for (const p of c.ports) {
      const hit = ours.find(([port]) => isObject(p) && p.containerPort === port);
      if (hit) throw new ConfigError(`${what}: container ${quote(String(c.name))} uses port ${hit[0]}, which the sidecar's ${hit[1]} needs; change one of them`);
    }
  }
}

function sidecarContainer(config: Config, image: string, native: boolean, adminBind: string, adminPort: string | undefined, previous: Json | null): Json {
  const ports: Json[] = [];
  if (config.reverseProtocol) ports.push({ name: "sidecar-in", containerPort: config.inPort });
  // The forward listener binds loopback only (--out-bind): nothing outside the pod reaches it.
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({ httpGet: { path, port: "sidecar-admin" }, periodSeconds, failureThreshold });
  const container: Json = {
    name: SIDECAR_NAME,
    image,
    args: ["--annotations", ANNOTATIONS_PATH, "--admin-bind", adminBind, ...(adminPort === undefined ? [] : ["--admin-port", String(config.adminPort)]), ...extraArgs(previous)],
    ports,
  };
  // Native: the kubelet restarts it whenever it exits (as it would a regular container), and
  // starts what follows once the startup probe passes: /readyz answers once every listener is
  // bound.
  if (native) container.restartPolicy = "Always";
  if (config.adminPort !== null) {
    ports.push({ name: "sidecar-admin", containerPort: config.adminPort });
    if (native) container.startupProbe = probe("/readyz", STARTUP_PERIOD_S, STARTUP_FAILURES);
    // Three misses, not one: a probe slower than its 1 s timeout on a busy node must not take
    // the pod out of its Services. A terminating pod leaves them at once anyway (EndpointSlice
    // `ready: false`); /readyz's 503 during the drain delay is for other load balancers.
    container.readinessProbe = probe("/readyz", 5, 3);
    container.livenessProbe = probe("/healthz", 10, 3);
  }
  const podinfoMount = { name: PODINFO_VOLUME, mountPath: PODINFO_DIR, readOnly: true };
  const otherMounts = Array.isArray(previous?.volumeMounts) ? previous.volumeMounts.filter((m) => !(isObject(m) && m.name === PODINFO_VOLUME)) : [];
  container.volumeMounts = [podinfoMount, ...otherMounts];
  if (Array.isArray(previous?.env) && previous.env.length > 0) container.env = previous.env;
  // Idle RSS is ~32 MiB. The limit covers the buffers the proxy's own limits allow, 64 KiB per
  // direction per tunnel: ~512 MiB at the 4096 connections of one listener (Istio's proxy has
  // 1 GiB too); below it, a slow-consumer load gets the sidecar OOM-killed, every connection
  // with it, before the connection cap refuses anything.
  container.resources = isObject(previous?.resources) ? previous.resources : { requests: { cpu: "25m", memory: "48Mi" }, limits: { memory: "1Gi" } };
  // Pod Security Standards "restricted", field by field (seccomp too: it may be set on each
  // container rather than the pod). Values the user changed on an earlier injection stay.
  container.securityContext = {
    runAsNonRoot: true,
    runAsUser: 65532, // distroless "nonroot"
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
    ...(isObject(previous?.securityContext) ? previous.securityContext : {}),
  };
  return container;
}

/**
 * The settings inject decides for the whole pod (the listeners, hence the workload's proxy
 * variables, the ports, the probes): from the annotations, or inject's own flags. The same
 * setting kept in the sidecar's args or env would win over the annotations in the sidecar
 * (flags and env rank higher) and leave the pod configured for something else.
 */
const INJECT_OWNED = OPTIONS.filter((o) => o.annotations.length > 0 || ["admin-port", "no-admin", "admin-bind", "annotations", "out-bind"].includes(o.flag));

/** Refuses what the user added to the sidecar that would override what inject decides. */
function checkKeptSettings(previous: Json, what: string): void {
  for (const arg of extraArgs(previous)) {
    if (typeof arg !== "string" || !arg.startsWith("--")) continue;
    const name = arg.slice(2).split("=", 1)[0];
    const owned = INJECT_OWNED.find((o) => o.flag === name);
    if (owned) throw new ConfigError(`${what}: the ${SIDECAR_NAME} container's args set --${name}, which inject decides for the whole pod; ${where(owned)}`);
  }
  if (!Array.isArray(previous.env)) return;
  for (const e of previous.env) {
    const owned = isObject(e) ? INJECT_OWNED.find((o) => o.env === e.name) : undefined;
    if (owned) throw new ConfigError(`${what}: the ${SIDECAR_NAME} container's env sets ${owned.env}, which inject decides for the whole pod; ${where(owned)}`);
  }
}

function where(o: (typeof OPTIONS)[number]): string {
  if (o.annotations.length > 0) return `set the pod template's annotation ${o.annotations[0]} instead, and remove it there`;
  if (o.flag === "admin-bind" || o.flag === "admin-port") return `use inject --${o.flag} instead, and remove it there`;
  return "remove it there";
}

/** The value an earlier injection gave `flag` in the sidecar's args (`--flag VALUE` or `--flag=VALUE`). */
function argValue(previous: Json | null, flag: string): string | undefined {
  const args = previous?.args;
  if (!Array.isArray(args)) return undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === flag && typeof args[i + 1] === "string") return args[i + 1] as string;
    if (typeof a === "string" && a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
  }
  return undefined;
}

/** The flags inject writes into the sidecar's args itself (the rest are the user's). */
const INJECT_ARGS = ["--annotations", "--admin-bind", "--admin-port"];

/** Arguments the user added to an earlier injection's sidecar: everything but INJECT_ARGS and their values. */
function extraArgs(previous: Json | null): unknown[] {
  const args = previous?.args;
  if (!Array.isArray(args)) return [];
  const out: unknown[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (typeof a === "string" && INJECT_ARGS.includes(a)) i++; // and its value
    else if (typeof a !== "string" || !INJECT_ARGS.some((flag) => a.startsWith(`${flag}=`))) out.push(a);
  }
  return out;
}

function podinfoVolume(): Json {
  return { name: PODINFO_VOLUME, downwardAPI: { items: [{ path: "annotations", fieldRef: { fieldPath: "metadata.annotations" } }] } };
}

/**
 * Proxy variables for the workload: both spellings, because curl reads only the lower-case
 * http_proxy (httpoxy) while Go, Python and most others read either. NO_PROXY keeps loopback
 * direct (the reverse path and the sidecar itself live there).
 */
function proxyEnv(config: Config): Array<[string, string]> {
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
 * spelling, so both end up equal) followed by the loopback ones.
 */
function setEnv(container: Json, vars: Array<[string, string]>, what: string): void {
  if (vars.length === 0) return;
  if (container.env !== undefined && !Array.isArray(container.env)) throw new ConfigError(`${what}: env of container ${quote(String(container.name))} is not a list`);
  const env = (container.env ??= []) as unknown[];
  const valueOf = (name: string) => {
    const e = env.find((x) => isObject(x) && x.name === name) as Json | undefined;
    return typeof e?.value === "string" ? e.value : "";
  };
  const noProxy: string[] = [];
  for (const item of `${valueOf("NO_PROXY")},${valueOf("no_proxy")}`.split(",")) {
    const s = item.trim();
    if (s !== "" && !noProxy.includes(s)) noProxy.push(s);
  }
  for (const [name, value] of vars) {
    const merged = name.toLowerCase() === "no_proxy" ? [...noProxy, ...value.split(",").filter((v) => !noProxy.includes(v))].join(",") : value;
    const at = env.findIndex((e) => isObject(e) && e.name === name);
    if (at === -1) env.push({ name, value: merged });
    else env[at] = { name, value: merged };
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
function clearProxyEnv(container: Json, injectedBefore: boolean, vars: Array<[string, string]>, what: string): void {
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

function upsertByName(list: unknown, item: Json, what: string): unknown[] {
  if (list !== undefined && !Array.isArray(list)) throw new ConfigError(`${what} is not a list`);
  const out = [...((list as unknown[] | undefined) ?? [])];
  const at = out.findIndex((e) => isObject(e) && e.name === item.name);
  if (at === -1) out.push(item);
  else out[at] = item;
  return out;
}

function objectAt(root: Json, path: readonly string[], what: string): Json {
  let node: unknown = root;
  for (let i = 0; i < path.length; i++) {
    node = isObject(node) ? node[path[i]!] : undefined;
    if (!isObject(node)) throw new ConfigError(`${what} has no ${path.slice(0, i + 1).join(".")} object`);
  }
  return node as Json;
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
