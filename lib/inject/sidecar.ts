/**
 * The sidecar container inject adds (and what an earlier injection's sidecar keeps): its args,
 * ports, probes, mounts, resources and securityContext, and the downward-API volume that hands
 * it the pod's annotations.
 */
import { type Config, ConfigError } from "../config.ts";
import { OPTIONS } from "../config/options.ts";
import { type Json, isObject } from "./json.ts";

export const SIDECAR_NAME = "sidecar-proxy";
export const PODINFO_VOLUME = "sidecar-proxy-podinfo";
const PODINFO_DIR = "/etc/podinfo";
const ANNOTATIONS_PATH = `${PODINFO_DIR}/annotations`;
/**
 * Kubelet probes come from the node to the pod IP, so a loopback-only admin endpoint cannot be
 * probed with httpGet, and an exec probe needs a shell or client the distroless image does not
 * have. The admin endpoint therefore listens on all IPv4 addresses (on an IPv6-only cluster,
 * `inject --admin-bind ::`); /metrics and /connections become reachable from the pod network:
 * restrict that with a NetworkPolicy if it matters.
 */
export const ADMIN_BIND = "0.0.0.0";
/** The native sidecar's start-up probe: the workload starts once this passes (30 s to bind). */
const STARTUP_PERIOD_S = 1;
const STARTUP_FAILURES = 30;

/** The sidecar container; what the user added to an earlier injection's (`previous`) stays. */
export function sidecarContainer(config: Config, image: string, native: boolean, adminBind: string, adminPort: string | undefined, previous: Json | null): Json {
  const ports: Json[] = [];
  // The forward listener binds loopback only (--out-bind): nothing outside the pod reaches it.
  if (config.reverseProtocol) ports.push({ name: "sidecar-in", containerPort: config.inPort });
  const container: Json = {
    name: SIDECAR_NAME,
    image,
    args: ["--annotations", ANNOTATIONS_PATH, "--admin-bind", adminBind, ...(adminPort === undefined ? [] : ["--admin-port", String(config.adminPort)]), ...extraArgs(previous)],
    ports,
  };
  // Native: the kubelet restarts it whenever it exits (as it would a regular container), and
  // starts what follows once the startup probe passes.
  if (native) container.restartPolicy = "Always";
  if (config.adminPort !== null) {
    ports.push({ name: "sidecar-admin", containerPort: config.adminPort });
    addProbes(container, native);
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
 * On the admin port: /readyz answers once every listener is bound (the native sidecar's startup
 * probe: what follows it starts then), /healthz while the process runs.
 */
function addProbes(container: Json, native: boolean): void {
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({ httpGet: { path, port: "sidecar-admin" }, periodSeconds, failureThreshold });
  if (native) container.startupProbe = probe("/readyz", STARTUP_PERIOD_S, STARTUP_FAILURES);
  // Three misses, not one: a probe slower than its 1 s timeout on a busy node must not take
  // the pod out of its Services. A terminating pod leaves them at once anyway (EndpointSlice
  // `ready: false`); /readyz's 503 during the drain delay is for other load balancers.
  container.readinessProbe = probe("/readyz", 5, 3);
  container.livenessProbe = probe("/healthz", 10, 3);
}

/**
 * The settings inject decides for the whole pod (the listeners, hence the workload's proxy
 * variables, the ports, the probes): from the annotations, or inject's own flags. The same
 * setting kept in the sidecar's args or env would win over the annotations in the sidecar
 * (flags and env rank higher) and leave the pod configured for something else.
 */
const INJECT_OWNED = OPTIONS.filter((o) => o.annotations.length > 0 || ["admin-port", "no-admin", "admin-bind", "annotations", "out-bind"].includes(o.flag));

/** Refuses what the user added to the sidecar that would override what inject decides. */
export function checkKeptSettings(previous: Json, what: string): void {
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
export function argValue(previous: Json | null, flag: string): string | undefined {
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

export function podinfoVolume(): Json {
  return { name: PODINFO_VOLUME, downwardAPI: { items: [{ path: "annotations", fieldRef: { fieldPath: "metadata.annotations" } }] } };
}
