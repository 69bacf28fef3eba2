/**
 * `sidecar-proxy inject`: adds the sidecar to a Kubernetes workload according to its pod
 * template's `sidecar.speedscale.com/*` annotations (SPEC §2), like `istioctl kube-inject`.
 * Pure: a parsed manifest in, a new manifest out; proxy.ts reads the file and prints the result.
 *
 * Input is JSON only (`kubectl get deploy NAME -o json`, `kubectl create ... --dry-run=client
 * -o json`): reading YAML would need a YAML dependency in a binary that otherwise has no use for
 * one. One object with a pod template: a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or
 * CronJob, or a bare Pod; a List or another kind is refused.
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
 * in place, and with the other `--sidecar` moves the sidecar). Invalid input throws ConfigError
 * with one line; annotation errors are the ones the sidecar itself would print at start-up, from
 * resolveConfig.
 */
import { type Config, ConfigError, resolveConfig } from "./config.ts";
import { quote } from "./config/error.ts";
import { ANNOTATION_PREFIX } from "./config/options.ts";
import { RELEASE_IMAGE } from "./version.ts";

export const SIDECAR_NAME = "sidecar-proxy";
export const PODINFO_VOLUME = "sidecar-proxy-podinfo";
export const PODINFO_DIR = "/etc/podinfo";
export const ANNOTATIONS_PATH = `${PODINFO_DIR}/annotations`;
/**
 * Kubelet probes come from the node to the pod IP, so a loopback-only admin endpoint cannot be
 * probed with httpGet, and an exec probe needs a shell or client the distroless image does not
 * have. The admin endpoint therefore listens on all IPv4 addresses (on an IPv6-only cluster,
 * edit it to `::`); /metrics and /connections become reachable from the pod network: restrict
 * that with a NetworkPolicy if it matters.
 */
export const ADMIN_BIND = "0.0.0.0";
const LOOPBACK_NO_PROXY = ["localhost", "127.0.0.1", "::1"];
/** Seconds added to drain + grace so the kubelet's SIGKILL never lands on a clean shutdown. */
const TERMINATION_MARGIN_S = 5;

const SIDECAR_KINDS = ["native", "container"] as const;

export interface InjectOptions {
  /** Sidecar image; this release's (RELEASE_IMAGE, lib/version.ts) when omitted. */
  readonly image?: string;
  /** `native` (default): a restartable init container; `container`: a regular container. */
  readonly sidecar?: string;
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
  try {
    return JSON.parse(text);
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
  const native = kindOfSidecar === "native";
  if (!isObject(manifest)) throw new ConfigError(`input is ${manifest === null ? "null" : typeof manifest}, not a workload object (${KINDS_TEXT})`);
  const out = structuredClone(manifest) as Json;
  const kind = out.kind;
  const templatePath = typeof kind === "string" && Object.hasOwn(POD_TEMPLATE_PATHS, kind) ? POD_TEMPLATE_PATHS[kind]! : null;
  if (templatePath === null) {
    const hint = kind === "List" ? "; pass one object: kubectl get deploy NAME -o json" : "";
    throw new ConfigError(`input is ${typeof kind === "string" ? `a ${kind}` : "not a Kubernetes object (no kind)"}, not ${KINDS_TEXT}${hint}`);
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

  const config = configFromAnnotations(podMeta.annotations, what, at);
  // Each list loses its old sidecar (either kind), and the new one goes where its kind belongs:
  // a native sidecar first, so every other init container starts after it.
  const workload = (containers as Json[]).filter((c) => c.name !== SIDECAR_NAME);
  const initList = (inits as Json[] | undefined) ?? [];
  const otherInits = initList.filter((c) => c.name !== SIDECAR_NAME);
  if (workload.length === 0) throw new ConfigError(`${what} has no containers besides ${SIDECAR_NAME} in ${at}spec.containers`);
  // Regular init containers have exited before a regular sidecar container starts.
  checkPorts(native ? [...workload, ...otherInits] : workload, config, what);

  const sidecar = sidecarContainer(config, image, native);
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
  const vars = proxyEnv(config);
  for (const c of native ? [...workload, ...otherInits] : workload) setEnv(c, vars, what);
  // A regular sidecar starts after the init containers: proxy URLs a native one gave them would
  // point at nothing. NO_PROXY stays (loopback entries never send anything anywhere).
  if (!native) for (const c of otherInits) unsetProxyUrls(c, vars);
  podSpec.volumes = upsertByName(podSpec.volumes, podinfoVolume(), `${what} ${at}spec.volumes`);
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
function configFromAnnotations(annotations: unknown, what: string, at: string): Config {
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
    flags: { annotations: file, "admin-bind": ADMIN_BIND },
    env: {},
    readFile: () => lines.join("\n"),
    stdoutIsTTY: false,
  }).config;
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

function sidecarContainer(config: Config, image: string, native: boolean): Json {
  const ports: Json[] = [];
  if (config.reverseProtocol) ports.push({ name: "sidecar-in", containerPort: config.inPort });
  // The forward listener binds loopback only (--out-bind): nothing outside the pod reaches it.
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({ httpGet: { path, port: "sidecar-admin" }, periodSeconds, failureThreshold });
  const container: Json = {
    name: SIDECAR_NAME,
    image,
    args: ["--annotations", ANNOTATIONS_PATH, "--admin-bind", ADMIN_BIND],
    ports,
  };
  // Native: the kubelet restarts it whenever it exits (as it would a regular container), and
  // starts what follows once the startup probe passes: /readyz answers once every listener is
  // bound.
  if (native) container.restartPolicy = "Always";
  if (config.adminPort !== null) {
    ports.push({ name: "sidecar-admin", containerPort: config.adminPort });
    if (native) container.startupProbe = probe("/readyz", STARTUP_PERIOD_S, STARTUP_FAILURES);
    container.readinessProbe = probe("/readyz", 5, 1);
    container.livenessProbe = probe("/healthz", 10, 3);
  }
  container.volumeMounts = [{ name: PODINFO_VOLUME, mountPath: PODINFO_DIR, readOnly: true }];
  // Idle RSS is ~32 MiB; the limit leaves room for buffers under load (64 KiB per direction per tunnel).
  container.resources = { requests: { cpu: "25m", memory: "48Mi" }, limits: { memory: "256Mi" } };
  container.securityContext = {
    runAsNonRoot: true,
    runAsUser: 65532, // distroless "nonroot"
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
  };
  return container;
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

/** Removes the proxy URL variables that still hold exactly the value `setEnv` would give them. */
function unsetProxyUrls(container: Json, vars: Array<[string, string]>): void {
  if (!Array.isArray(container.env)) return;
  const ours = vars.filter(([name]) => name.toLowerCase() !== "no_proxy");
  container.env = container.env.filter((e) => !(isObject(e) && ours.some(([name, value]) => e.name === name && e.value === value)));
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
