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
 * overwritten (inject/proxy-env.ts). Invalid input throws ConfigError with one line; annotation errors
 * are the ones the sidecar itself would print at start-up, from resolveConfig.
 */
import { type Config, ConfigError, resolveConfig } from "./config.ts";
import { quote } from "./text.ts";
import { ANNOTATION_PREFIX } from "./config/options.ts";
import { type Json, isObject, objectAt, upsertByName } from "./inject/json.ts";
import { clearProxyEnv, proxyEnv, setEnv } from "./inject/proxy-env.ts";
import { ADMIN_BIND, PODINFO_VOLUME, SIDECAR_NAME, argValue, checkKeptSettings, podinfoVolume, sidecarContainer } from "./inject/sidecar.ts";
import { RELEASE_IMAGE } from "./version.ts";

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
  /** Told what the sidecar would warn about at start-up (a misspelt annotation key). */
  readonly warn?: (message: string) => void;
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
  const pod = podTemplateOf(out, native);
  const { what, at, podSpec, containers, inits } = pod;
  // An earlier injection's sidecar: what the user added to it is kept (sidecarContainer), the
  // admin address and port it was given stay unless given again, and the proxy URLs it gave the
  // containers are dropped before this configuration's are set.
  const previous = [...containers, ...inits].find((c) => c.name === SIDECAR_NAME) ?? null;
  const adminBind = options.adminBind ?? argValue(previous, "--admin-bind") ?? ADMIN_BIND;
  const adminPort = options.adminPort ?? argValue(previous, "--admin-port");
  const config = configFromAnnotations(pod.podMeta.annotations, what, at, adminBind, adminPort, options.warn);
  // Each list loses its old sidecar (either kind), and the new one goes where its kind belongs.
  const workload = containers.filter((c) => c.name !== SIDECAR_NAME);
  const otherInits = inits.filter((c) => c.name !== SIDECAR_NAME);
  if (workload.length === 0) throw new ConfigError(`${what} has no containers besides ${SIDECAR_NAME} in ${at}spec.containers`);
  // Regular init containers have exited before a regular sidecar container starts.
  checkPorts(native ? [...workload, ...otherInits] : workload, config, what);

  const vars = proxyEnv(config);
  // A regular sidecar starts after the init containers: they get no proxy URLs (a native one's
  // would point at nothing). NO_PROXY stays (loopback entries never send anything anywhere).
  const proxied = native ? [...workload, ...otherInits] : workload;
  for (const c of [...workload, ...otherInits]) clearProxyEnv(c, previous !== null, proxied.includes(c) ? vars : [], what);
  if (previous !== null) checkKeptSettings(previous, what);
  placeSidecar(pod, sidecarContainer(config, image, native, adminBind, adminPort, previous), native);
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

/** The pod template of a workload object, checked: where it is, its metadata, spec and containers. */
interface PodTemplate {
  /** How messages name the object: `deployment/web`. */
  readonly what: string;
  /** Prefix of the pod template's paths in messages (`spec.template.`; empty for a Pod). */
  readonly at: string;
  readonly podMeta: Json;
  readonly podSpec: Json;
  readonly containers: Json[];
  readonly inits: Json[];
}

function podTemplateOf(out: Json, native: boolean): PodTemplate {
  const kind = out.kind;
  const templatePath = typeof kind === "string" && Object.hasOwn(POD_TEMPLATE_PATHS, kind) ? POD_TEMPLATE_PATHS[kind]! : null;
  if (templatePath === null) {
    throw new ConfigError(`input is ${typeof kind === "string" ? `a ${kind}` : "not a Kubernetes object (no kind)"}, not ${KINDS_TEXT} or a List of them`);
  }
  const meta = isObject(out.metadata) ? out.metadata : {};
  const what = `${(kind as string).toLowerCase()}/${typeof meta.name === "string" ? meta.name : "?"}`;
  const template = objectAt(out, templatePath, what); // a Pod (empty path) is its own template
  const where = templatePath.join(".");
  const at = where === "" ? "" : `${where}.`;
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
  return { what, at, podMeta, podSpec, containers, inits: inits ?? [] };
}

/**
 * A native sidecar goes first among the init containers, so every other one starts after it;
 * a regular one takes its old place among the containers, or goes last. The other list loses
 * an earlier injection's sidecar of the other kind (and an init list left empty goes too).
 */
function placeSidecar({ podSpec, containers, inits }: PodTemplate, sidecar: Json, native: boolean): void {
  const workload = containers.filter((c) => c.name !== SIDECAR_NAME);
  const otherInits = inits.filter((c) => c.name !== SIDECAR_NAME);
  if (native) {
    podSpec.containers = workload;
    podSpec.initContainers = [sidecar, ...otherInits];
    return;
  }
  const old = containers.findIndex((c) => c.name === SIDECAR_NAME);
  podSpec.containers = old === -1 ? [...workload, sidecar] : containers.map((c) => (c.name === SIDECAR_NAME ? sidecar : c));
  if (otherInits.length < inits.length) {
    if (otherInits.length > 0) podSpec.initContainers = otherInits;
    else delete podSpec.initContainers;
  }
}

/**
 * The configuration the sidecar will run with: the pod template's annotations (as the kubelet
 * would write them to the downward-API file) plus the sidecar's own flags, through resolveConfig,
 * so an invalid annotation reads exactly as at start-up.
 */
function configFromAnnotations(annotations: unknown, what: string, at: string, adminBind: string, adminPort: string | undefined, warn?: (message: string) => void): Config {
  if (annotations !== undefined && !isObject(annotations)) throw new ConfigError(`${what}: ${at}metadata.annotations is not an object`);
  const lines: string[] = [];
  for (const [key, value] of Object.entries(annotations ?? {})) {
    if (!key.startsWith(ANNOTATION_PREFIX)) continue;
    if (typeof value !== "string") throw new ConfigError(`${what}: annotation ${key} is ${JSON.stringify(value)}; annotation values are strings (quote it)`);
    // JSON string escapes are a subset of what Go's strconv.Unquote reads (lib/config/annotations.ts).
    lines.push(`${key}=${JSON.stringify(value)}`);
  }
  const file = at === "" ? `the annotations of ${what}` : `the pod template of ${what}`;
  const { config, warnings } = resolveConfig({
    flags: { annotations: file, "admin-bind": adminBind, ...(adminPort === undefined ? {} : { "admin-port": adminPort }) },
    env: {},
    readFile: () => lines.join("\n"),
    stdoutIsTTY: false,
  });
  for (const message of warnings) warn?.(message);
  return config;
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

