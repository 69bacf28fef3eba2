/**
 * `sidecar-proxy inject` (lib/inject.ts): on the example manifests in deploy/, idempotence,
 * per-annotation variants and invalid input; then the real CLI, spawned.
 *
 * deploy/example.yaml must be exactly inject(deploy/workload.json) plus comments and a Service:
 * it is parsed with Bun.YAML (tests only; the proxy itself reads no YAML) and compared whole.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, resolveConfig } from "../lib/config.ts";
import { inject, parseManifest } from "../lib/inject.ts";
import { ROOT, cleanEnv, proxyCommand, runProxyOnce } from "./helpers/proc.ts";

type Json = Record<string, any>;

const WORKLOAD_PATH = join(ROOT, "deploy", "workload.json");
const workload = (): Json => JSON.parse(readFileSync(WORKLOAD_PATH, "utf8")) as Json;
const exampleDocs = Bun.YAML.parse(readFileSync(join(ROOT, "deploy", "example.yaml"), "utf8")) as Json[];
const exampleDeployment = exampleDocs.find((d) => d.kind === "Deployment") as Json;
const exampleService = exampleDocs.find((d) => d.kind === "Service") as Json;

const podSpec = (d: Json): Json => d.spec.template.spec;
/** Every container of the pod, init containers first, as the kubelet starts them. */
const allContainers = (spec: Json): Json[] => [...(spec.initContainers ?? []), ...spec.containers];
const container = (d: Json, name: string): Json => allContainers(podSpec(d)).find((c: Json) => c.name === name)!;
const names = (list: Json[] | undefined): string[] | undefined => list?.map((c) => c.name);
const envOf = (c: Json): Record<string, string> => Object.fromEntries((c.env ?? []).map((e: Json) => [e.name, e.value]));

function withAnnotations(annotations: Record<string, unknown>): Json {
  const d = workload();
  d.spec.template.metadata.annotations = annotations;
  return d;
}

function injectError(manifest: unknown, options?: Parameters<typeof inject>[1]): string {
  try {
    inject(manifest, options);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("inject accepted invalid input");
}

describe("inject on deploy/workload.json", () => {
  test("the output is deploy/example.yaml's Deployment, field for field", () => {
    expect(inject(workload())).toEqual(exampleDeployment);
  });

  test("example.yaml: SPEC §2 annotations, probes on the admin port, drain-matching grace, Service on the in-port", () => {
    const annotations = exampleDeployment.spec.template.metadata.annotations;
    expect(annotations).toMatchObject({
      "sidecar.speedscale.com/proxy-type": "dual",
      "sidecar.speedscale.com/proxy-protocol": "tcp:http",
      "sidecar.speedscale.com/proxy-host": "localhost",
      "sidecar.speedscale.com/proxy-port": "8080",
    });
    const sidecar = container(exampleDeployment, "sidecar-proxy");
    expect(sidecar.args).toEqual(["--annotations", "/etc/podinfo/annotations", "--admin-bind", "0.0.0.0"]);
    expect(sidecar.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "sidecar-admin" });
    expect(sidecar.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "sidecar-admin" });
    expect(sidecar.ports).toContainEqual({ name: "sidecar-admin", containerPort: 4100 });
    expect(podSpec(exampleDeployment).volumes).toContainEqual({
      name: "sidecar-proxy-podinfo",
      downwardAPI: { items: [{ path: "annotations", fieldRef: { fieldPath: "metadata.annotations" } }] },
    });
    expect(podSpec(exampleDeployment).terminationGracePeriodSeconds).toBe(5 + 25 + 5);
    expect(envOf(container(exampleDeployment, "web"))).toMatchObject({
      HTTP_PROXY: "http://127.0.0.1:4140",
      HTTPS_PROXY: "http://127.0.0.1:4140",
      NO_PROXY: "localhost,127.0.0.1,::1",
    });
    // A number: before 1.32, Services do not resolve a native sidecar's named ports (kubernetes#127958).
    expect(exampleService.spec.ports).toEqual([{ name: "http", port: 80, targetPort: 4143 }]);
    expect(sidecar.ports).toContainEqual({ name: "sidecar-in", containerPort: 4143 });
    expect(exampleService.spec.selector).toEqual(exampleDeployment.spec.template.metadata.labels);
  });

  test("the annotations the sidecar will read resolve to the example's listeners", () => {
    const annotations = exampleDeployment.spec.template.metadata.annotations as Record<string, string>;
    const file = Object.entries(annotations)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join("\n");
    const { config } = resolveConfig({ flags: { annotations: "/etc/podinfo/annotations", "admin-bind": "0.0.0.0" }, env: {}, readFile: () => file, stdoutIsTTY: false });
    expect(config).toMatchObject({ reverseProtocol: "tcp", forwardProtocol: "http", proxyHost: "localhost", proxyPort: 8080, inPort: 4143, outPort: 4140, adminPort: 4100 });
  });

  test("idempotent: injecting twice equals injecting once; the input is not modified", () => {
    const input = workload();
    const once = inject(input);
    expect(input).toEqual(workload());
    expect(inject(once)).toEqual(once);
    expect(inject(inject(once))).toEqual(once);
    expect(allContainers(podSpec(inject(once))).filter((c: Json) => c.name === "sidecar-proxy")).toHaveLength(1);
  });

  test("re-injecting after an annotation change updates in place", () => {
    const once = inject(workload()) as Json;
    once.spec.template.metadata.annotations["sidecar.speedscale.com/proxy-out-port"] = "4150";
    const again = inject(once);
    expect(names(podSpec(again).initContainers)).toEqual(["sidecar-proxy"]);
    expect(names(podSpec(again).containers)).toEqual(["web"]);
    expect(podSpec(again).volumes).toHaveLength(1);
    expect(envOf(container(again, "web")).HTTP_PROXY).toBe("http://127.0.0.1:4150");
    expect(container(again, "web").env).toHaveLength(6);
  });

  test("--image", () => {
    expect(container(inject(workload(), { image: "registry.example.com/sidecar-proxy:0.1.0" }), "sidecar-proxy").image).toBe("registry.example.com/sidecar-proxy:0.1.0");
  });
});

describe("inject follows the annotations", () => {
  test("reverse tcp only: no proxy variables, the in-port is declared", () => {
    const out = inject(withAnnotations({ "sidecar.speedscale.com/proxy-type": "reverse", "sidecar.speedscale.com/proxy-protocol": "tcp", "sidecar.speedscale.com/proxy-port": "8080" }));
    expect(container(out, "web").env).toBeUndefined();
    expect(container(out, "sidecar-proxy").ports).toEqual([
      { name: "sidecar-in", containerPort: 4143 },
      { name: "sidecar-admin", containerPort: 4100 },
    ]);
  });

  test("forward http on another port (legacy camelCase key): variables point at it, no in-port", () => {
    const out = inject(withAnnotations({ "sidecar.speedscale.com/proxyType": "forward", "sidecar.speedscale.com/proxyOutPort": "5140" }));
    expect(envOf(container(out, "web"))).toEqual({
      HTTP_PROXY: "http://127.0.0.1:5140",
      HTTPS_PROXY: "http://127.0.0.1:5140",
      NO_PROXY: "localhost,127.0.0.1,::1",
      http_proxy: "http://127.0.0.1:5140",
      https_proxy: "http://127.0.0.1:5140",
      no_proxy: "localhost,127.0.0.1,::1",
    });
    expect(container(out, "sidecar-proxy").ports).toEqual([{ name: "sidecar-admin", containerPort: 4100 }]);
  });

  test("forward socks: ALL_PROXY with socks5h", () => {
    const out = inject(withAnnotations({ "sidecar.speedscale.com/proxy-type": "dual", "sidecar.speedscale.com/proxy-protocol": "tcp:socks" }));
    expect(envOf(container(out, "web"))).toEqual({
      ALL_PROXY: "socks5h://127.0.0.1:4140",
      NO_PROXY: "localhost,127.0.0.1,::1",
      all_proxy: "socks5h://127.0.0.1:4140",
      no_proxy: "localhost,127.0.0.1,::1",
    });
  });

  test("no sidecar annotations: the SPEC defaults (dual http)", () => {
    const out = inject(withAnnotations({ "team.example.com/owner": "web" }));
    expect(envOf(container(out, "web")).HTTP_PROXY).toBe("http://127.0.0.1:4140");
    expect(container(out, "sidecar-proxy").ports[0]).toEqual({ name: "sidecar-in", containerPort: 4143 });
  });

  test("the workload's env stays; its NO_PROXY entries (either spelling) are kept in both", () => {
    const d = workload();
    podSpec(d).containers[0].env = [
      { name: "LOG_LEVEL", value: "debug" },
      { name: "no_proxy", value: "metadata.google.internal, .corp" },
    ];
    const out = inject(d);
    const env = envOf(container(out, "web"));
    expect(env.LOG_LEVEL).toBe("debug");
    expect(env.HTTP_PROXY).toBe("http://127.0.0.1:4140");
    expect(env.no_proxy).toBe("metadata.google.internal,.corp,localhost,127.0.0.1,::1");
    expect(env.NO_PROXY).toBe(env.no_proxy);
    expect(inject(out)).toEqual(out);
  });

  test("a misspelt sidecar annotation is told (as the sidecar would at start-up), and injected as the default it leaves", () => {
    const said: string[] = [];
    const out = inject(withAnnotations({ "sidecar.speedscale.com/proxy_type": "reverse" }), { warn: (m) => said.push(m) });
    expect(said).toEqual([
      "annotation sidecar.speedscale.com/proxy_type in the pod template of deployment/web is not a setting of sidecar-proxy and is ignored; did you mean sidecar.speedscale.com/proxy-type?",
    ]);
    expect(envOf(container(out, "web")).HTTP_PROXY).toBe("http://127.0.0.1:4140"); // nothing guessed: still dual
  });

  test("a NO_PROXY listed twice: the last one (the one the kubelet uses) is merged with the loopback entries; the earlier one stays as it was, for a $(NO_PROXY) between them (only the first was merged, and the kubelet used the last, unmerged)", () => {
    const d = workload();
    podSpec(d).containers[0].env = [
      { name: "NO_PROXY", value: "first.invalid" },
      { name: "COPY", value: "$(NO_PROXY)" },
      { name: "NO_PROXY", value: "last.invalid" },
    ];
    const out = inject(d);
    const env = container(out, "web").env as Json[];
    expect(env.slice(0, 3)).toEqual([
      { name: "NO_PROXY", value: "first.invalid" },
      { name: "COPY", value: "$(NO_PROXY)" },
      { name: "NO_PROXY", value: "last.invalid,localhost,127.0.0.1,::1" },
    ]);
    expect(envOf(container(out, "web")).no_proxy).toBe("last.invalid,localhost,127.0.0.1,::1");
    expect(inject(out)).toEqual(out);
  });

  test("a proxy of the workload's own, or proxy settings from a ConfigMap, are refused where the sidecar would take their place (they were replaced without a word)", () => {
    const withEnv = (env: Json[], annotations: Record<string, string> = {}) => {
      const d = withAnnotations(annotations);
      podSpec(d).containers[0].env = env;
      return d;
    };
    expect(injectError(withEnv([{ name: "HTTP_PROXY", value: "http://corp-proxy.invalid:3128" }]))).toBe(
      'deployment/web: container "web" sets HTTP_PROXY=http://corp-proxy.invalid:3128, which the sidecar\'s forward listener would replace (it dials destinations itself, it cannot chain to that proxy); remove the variable, or use proxy-type reverse',
    );
    const fromMap = { name: "NO_PROXY", valueFrom: { configMapKeyRef: { name: "proxy", key: "no_proxy" } } };
    expect(injectError(withEnv([fromMap]))).toContain("sets NO_PROXY from valueFrom, which inject cannot merge with the sidecar's entries");
    // Without a forward listener nothing of the workload's is touched.
    const reverse = { "sidecar.speedscale.com/proxy-type": "reverse", "sidecar.speedscale.com/proxy-protocol": "tcp" };
    const own = [{ name: "HTTPS_PROXY", value: "http://corp-proxy.invalid:3128" }, { name: "HTTP_PROXY", valueFrom: { secretKeyRef: { name: "p", key: "u" } } }];
    expect(container(inject(withEnv(own, reverse)), "web").env).toEqual(own);
  });

  test("re-injecting after a switch to reverse or to socks drops the proxy URLs the earlier injection set (they pointed at nothing, or at the wrong protocol)", () => {
    const once = inject(workload()) as Json;
    const annotations = once.spec.template.metadata.annotations;
    const toReverse = structuredClone(once);
    Object.assign(toReverse.spec.template.metadata.annotations, { "sidecar.speedscale.com/proxy-type": "reverse", "sidecar.speedscale.com/proxy-protocol": "tcp" });
    const reverse = envOf(container(inject(toReverse), "web"));
    expect(Object.keys(reverse).filter((k) => /proxy$/i.test(k) && !/no_proxy/i.test(k))).toEqual([]);
    expect(reverse.NO_PROXY).toBe("localhost,127.0.0.1,::1"); // harmless, kept
    const toSocks = structuredClone(once);
    toSocks.spec.template.metadata.annotations = { ...annotations, "sidecar.speedscale.com/proxy-protocol": "tcp:socks" };
    const socks = envOf(container(inject(toSocks), "web"));
    expect(socks.HTTP_PROXY).toBeUndefined();
    expect(socks.https_proxy).toBeUndefined();
    expect(socks.ALL_PROXY).toBe("socks5h://127.0.0.1:4140");
    expect(inject(inject(toSocks))).toEqual(inject(toSocks));
  });

  test("re-injecting keeps what the user added to the sidecar: args, env, mounts, resources, securityContext values", () => {
    const once = inject(workload()) as Json;
    const side = container(once, "sidecar-proxy");
    side.args.push("--drain-delay", "0s", "--auth-file", "/etc/auth/creds");
    side.env = [{ name: "SIDECAR_LOG_LEVEL", value: "debug" }];
    side.volumeMounts.push({ name: "auth", mountPath: "/etc/auth", readOnly: true });
    side.resources = { limits: { memory: "2Gi" } };
    delete side.securityContext.runAsUser;
    side.securityContext.runAsUser = 1000680000; // OpenShift's range
    const again = inject(once, { image: "registry.invalid/sidecar-proxy:0.2.0" });
    const kept = container(again, "sidecar-proxy");
    expect(kept.image).toBe("registry.invalid/sidecar-proxy:0.2.0");
    expect(kept.args).toEqual(["--annotations", "/etc/podinfo/annotations", "--admin-bind", "0.0.0.0", "--drain-delay", "0s", "--auth-file", "/etc/auth/creds"]);
    expect(kept.env).toEqual([{ name: "SIDECAR_LOG_LEVEL", value: "debug" }]);
    expect(kept.volumeMounts).toEqual([{ name: "sidecar-proxy-podinfo", mountPath: "/etc/podinfo", readOnly: true }, { name: "auth", mountPath: "/etc/auth", readOnly: true }]);
    expect(kept.resources).toEqual({ limits: { memory: "2Gi" } });
    expect(kept.securityContext.runAsUser).toBe(1000680000);
    expect(kept.securityContext.seccompProfile).toEqual({ type: "RuntimeDefault" });
    expect(inject(again, { image: "registry.invalid/sidecar-proxy:0.2.0" })).toEqual(again);
  });

  test("kept args or env that would override what inject decides for the pod (listeners, ports) are refused; inject --admin-port moves the admin endpoint", () => {
    const once = inject(workload()) as Json;
    const withArgs = structuredClone(once);
    container(withArgs, "sidecar-proxy").args.push("--proxy-type", "reverse");
    expect(injectError(withArgs)).toBe(
      "deployment/web: the sidecar-proxy container's args set --proxy-type, which inject decides for the whole pod; set the pod template's annotation sidecar.speedscale.com/proxy-type instead, and remove it there",
    );
    const withEq = structuredClone(once);
    container(withEq, "sidecar-proxy").args.push("--proxy-out-port=5140");
    expect(injectError(withEq)).toContain("args set --proxy-out-port, which inject decides");
    const withEnv = structuredClone(once);
    container(withEnv, "sidecar-proxy").env = [{ name: "SIDECAR_NO_ADMIN", value: "1" }];
    expect(injectError(withEnv)).toContain("env sets SIDECAR_NO_ADMIN, which inject decides for the whole pod; remove it there");
    const moved = inject(workload(), { adminPort: "4200" });
    const side = container(moved, "sidecar-proxy");
    expect(side.args).toEqual(["--annotations", "/etc/podinfo/annotations", "--admin-bind", "0.0.0.0", "--admin-port", "4200"]);
    expect(side.ports).toContainEqual({ name: "sidecar-admin", containerPort: 4200 });
    expect(inject(moved, { adminPort: "4200" })).toEqual(moved);
    // Kept when re-injecting without them (an image bump must not move the admin endpoint back
    // onto a port the workload uses); given again, they change.
    expect(inject(moved)).toEqual(moved);
    expect(container(inject(inject(workload(), { adminBind: "::" })), "sidecar-proxy").args).toEqual(["--annotations", "/etc/podinfo/annotations", "--admin-bind", "::"]);
    expect(container(inject(moved, { adminPort: "4300" }), "sidecar-proxy").args).toEqual(["--annotations", "/etc/podinfo/annotations", "--admin-bind", "0.0.0.0", "--admin-port", "4300"]);
  });

  test("Pod Security Standards restricted: the sidecar's securityContext has every field it asks of a container", () => {
    expect(container(inject(workload()), "sidecar-proxy").securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    });
  });

  test("--admin-bind (an IPv6-only cluster's kubelet probes the pod's IPv6 address)", () => {
    expect(container(inject(workload(), { adminBind: "::" }), "sidecar-proxy").args).toEqual(["--annotations", "/etc/podinfo/annotations", "--admin-bind", "::"]);
    expect(injectError(workload(), { adminBind: "not-an-address" })).toContain("admin-bind");
  });

  test("sidecar annotations on the Deployment's own metadata (kubectl annotate deploy) are refused: its pods do not get them", () => {
    const d = workload();
    d.metadata.annotations = { "sidecar.speedscale.com/proxy-port": "9090" };
    expect(injectError(d)).toBe(
      "deployment/web: annotation sidecar.speedscale.com/proxy-port is on the deployment's own metadata, which its pods do not get; the sidecar reads its pod's: put it in spec.template.metadata.annotations",
    );
    d.spec.template.metadata.annotations["sidecar.speedscale.com/proxy-port"] = "9090";
    expect(container(inject(d), "sidecar-proxy")).toBeDefined(); // the same value in both: fine
  });

  test("a volume of the workload's own named like the sidecar's is refused, not replaced", () => {
    const d = workload();
    podSpec(d).volumes = [{ name: "sidecar-proxy-podinfo", configMap: { name: "mine" } }];
    expect(injectError(d)).toContain("has a volume named sidecar-proxy-podinfo that is not the sidecar's downward-API volume");
  });

  test("native: the sidecar starts first, so every other container, init containers too, gets the variables; a longer grace period is kept", () => {
    const d = workload();
    podSpec(d).containers.push({ name: "worker", image: "busybox" });
    podSpec(d).initContainers = [{ name: "migrate", image: "busybox" }];
    podSpec(d).terminationGracePeriodSeconds = 120;
    const out = inject(d);
    expect(names(podSpec(out).initContainers)).toEqual(["sidecar-proxy", "migrate"]);
    expect(names(podSpec(out).containers)).toEqual(["web", "worker"]);
    expect(envOf(container(out, "worker")).HTTPS_PROXY).toBe("http://127.0.0.1:4140");
    expect(envOf(container(out, "migrate")).HTTPS_PROXY).toBe("http://127.0.0.1:4140");
    expect(container(out, "sidecar-proxy").env).toBeUndefined();
    expect(podSpec(out).terminationGracePeriodSeconds).toBe(120);
  });

  test("--sidecar container: a regular container after the workload; init containers run before it starts and get no variables", () => {
    const d = workload();
    podSpec(d).containers.push({ name: "worker", image: "busybox" });
    podSpec(d).initContainers = [{ name: "migrate", image: "busybox" }];
    const out = inject(d, { sidecar: "container" });
    expect(names(podSpec(out).containers)).toEqual(["web", "worker", "sidecar-proxy"]);
    expect(names(podSpec(out).initContainers)).toEqual(["migrate"]);
    expect(envOf(container(out, "worker")).HTTPS_PROXY).toBe("http://127.0.0.1:4140");
    expect(container(out, "migrate").env).toBeUndefined();
    const sidecar = container(out, "sidecar-proxy");
    expect(sidecar.restartPolicy).toBeUndefined();
    expect(sidecar.startupProbe).toBeUndefined();
    // Apart from those two fields, the same container as the native one.
    const { restartPolicy: _r, startupProbe: _s, ...nativeRest } = container(inject(d), "sidecar-proxy");
    expect(sidecar).toEqual(nativeRest);
    expect(inject(out, { sidecar: "container" })).toEqual(out);
  });

  test("switching --sidecar moves the sidecar, and the other list is left as the workload had it", () => {
    const plain = workload();
    const native = inject(plain);
    const regular = inject(plain, { sidecar: "container" });
    expect(podSpec(regular).initContainers).toBeUndefined();
    expect(inject(native, { sidecar: "container" })).toEqual(regular);
    expect(inject(regular)).toEqual(native);
    const withInit = workload();
    podSpec(withInit).initContainers = [{ name: "migrate", image: "busybox" }];
    const back = inject(inject(withInit), { sidecar: "container" });
    expect(names(podSpec(back).initContainers)).toEqual(["migrate"]);
    expect(names(podSpec(back).containers)).toEqual(["web", "sidecar-proxy"]);
    // The proxy URLs a native sidecar gave the init container go (it now runs before the proxy
    // starts); NO_PROXY stays, and so does a proxy URL the workload set itself.
    expect(envOf(container(back, "migrate"))).toEqual({ NO_PROXY: "localhost,127.0.0.1,::1", no_proxy: "localhost,127.0.0.1,::1" });
    const own = workload();
    podSpec(own).initContainers = [{ name: "migrate", image: "busybox", env: [{ name: "HTTP_PROXY", value: "http://corp-proxy:3128" }] }];
    expect(envOf(container(inject(own, { sidecar: "container" }), "migrate")).HTTP_PROXY).toBe("http://corp-proxy:3128");
  });

  test("every kind with a pod template: StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, and a bare Pod", () => {
    const template = (): Json => workload().spec.template;
    const injected = podSpec(inject(workload()));
    for (const kind of ["StatefulSet", "DaemonSet", "ReplicaSet", "Job"]) {
      const out: Json = inject({ apiVersion: kind === "Job" ? "batch/v1" : "apps/v1", kind, metadata: { name: "web" }, spec: { template: template() } });
      expect(out.spec.template.spec).toEqual(injected);
    }
    const cron: Json = inject({ apiVersion: "batch/v1", kind: "CronJob", metadata: { name: "web" }, spec: { schedule: "@daily", jobTemplate: { spec: { template: template() } } } });
    expect(cron.spec.jobTemplate.spec.template.spec).toEqual(injected);
    expect(cron.spec.schedule).toBe("@daily");
    const pod: Json = inject({ apiVersion: "v1", kind: "Pod", metadata: { name: "web", ...template().metadata }, spec: template().spec });
    expect(pod.spec).toEqual(injected);
    // Errors name the object as kubectl does, and the path in that kind.
    const bare = { apiVersion: "v1", kind: "Pod", metadata: { name: "p", annotations: { "sidecar.speedscale.com/proxy-port": "http" } }, spec: template().spec };
    expect(injectError(bare)).toMatch(/^invalid proxy-port "http" from annotation sidecar\.speedscale\.com\/proxy-port in the annotations of pod\/p: /);
    expect(injectError({ kind: "Pod", metadata: { name: "p" } })).toBe("pod/p has no spec object");
    expect(injectError({ kind: "CronJob", metadata: { name: "c" }, spec: { jobTemplate: {} } })).toBe("cronjob/c has no spec.jobTemplate.spec object");
    expect(injectError({ kind: "Job", metadata: { name: "j" }, spec: { template: { spec: {} } } })).toBe("job/j has no containers in spec.template.spec.containers");
  });

  test("existing volumes stay", () => {
    const d = workload();
    podSpec(d).volumes = [{ name: "cache", emptyDir: {} }];
    expect(podSpec(inject(d)).volumes.map((v: Json) => v.name)).toEqual(["cache", "sidecar-proxy-podinfo"]);
  });
});

describe("inject refuses invalid input with one line", () => {
  test("not JSON (YAML gets a hint)", () => {
    expect(() => parseManifest("{", "x.json")).toThrow(/^x\.json is not JSON: .*; inject reads JSON only, e\.g\. kubectl get deploy NAME -o json \| sidecar-proxy inject$/);
    expect(() => parseManifest("apiVersion: apps/v1\nkind: Deployment\n", "d.yaml")).toThrow(/^d\.yaml is not JSON \(this looks like YAML\): /);
  });

  test("empty input, a byte-order mark, a JSON array: said so", () => {
    expect(() => parseManifest("  \n", "stdin")).toThrow("stdin is empty; inject reads one workload as JSON");
    expect(parseManifest(`\uFEFF${JSON.stringify(workload())}`, "w.json")).toEqual(workload());
    expect(injectError([])).toStartWith("input is a JSON array, not a workload object");
  });

  test("a manifest nested far too deep: one line, not a stack trace", () => {
    let deep: unknown = [];
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(injectError({ ...workload(), deep })).toStartWith("input cannot be copied (");
    expect(injectError({ kind: "List", items: [{ ...workload(), deep }] })).toStartWith("input cannot be copied ("); // in a List too
  });

  test("not a workload with a pod template", () => {
    const kinds = "a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod";
    expect(injectError(null)).toBe(`input is null, not a workload object (${kinds})`);
    expect(injectError([workload()])).toBe(`input is a JSON array, not a workload object (${kinds})`);
    expect(injectError("Deployment")).toBe(`input is string, not a workload object (${kinds})`);
    expect(injectError({ apiVersion: "v1", kind: "Service", spec: {} })).toBe(`input is a Service, not ${kinds} or a List of them`);
    expect(injectError({ metadata: { name: "x" } })).toBe(`input is not a Kubernetes object (no kind), not ${kinds} or a List of them`);
    expect(injectError({ kind: "toString", metadata: { name: "x" } })).toBe(`input is a toString, not ${kinds} or a List of them`);
    expect(injectError({ apiVersion: "v1", kind: "List" })).toBe("input is a List without an items array");
  });

  test("a List (kubectl get deploy -o json without a name): each workload injected, other objects passed through", () => {
    const service = { apiVersion: "v1", kind: "Service", metadata: { name: "web" }, spec: { ports: [{ port: 80 }] } };
    const list = { apiVersion: "v1", kind: "List", metadata: { resourceVersion: "" }, items: [workload(), service] };
    const out = inject(list) as Json;
    expect(out.items[0]).toEqual(inject(workload()));
    expect(out.items[1]).toEqual(service);
    expect(out.metadata).toEqual({ resourceVersion: "" });
    expect(inject(out)).toEqual(out);
    const bad = workload();
    bad.spec.template.metadata.annotations["sidecar.speedscale.com/proxy-type"] = "transparent";
    expect(injectError({ ...list, items: [workload(), bad] })).toContain("transparent");
    const nested = inject({ kind: "List", items: [{ kind: "List", items: [workload()] }] }) as Json;
    expect(nested.items[0].items[0]).toEqual(inject(workload())); // it passed through uninjected
    // kubectl's typed lists (DeploymentList) too.
    expect((inject({ apiVersion: "apps/v1", kind: "DeploymentList", items: [workload()] }) as Json).items[0]).toEqual(inject(workload()));
  });

  test("--sidecar: native or container; container is refused for pods that must complete (Job, CronJob, restartPolicy Never or OnFailure)", () => {
    expect(injectError(workload(), { sidecar: "regular" })).toBe(
      `invalid --sidecar "regular"; allowed: native (an init container with restartPolicy Always, Kubernetes 1.29+), container (a regular container)`,
    );
    const job = { apiVersion: "batch/v1", kind: "Job", metadata: { name: "nightly" }, spec: { template: workload().spec.template } };
    expect(injectError(job, { sidecar: "container" })).toBe(
      "job/nightly: --sidecar container would keep its pods from completing (a regular container runs until it is stopped); use --sidecar native (Kubernetes 1.29+)",
    );
    expect(injectError({ ...job, kind: "CronJob", spec: { jobTemplate: { spec: job.spec } } }, { sidecar: "container" })).toMatch(/^cronjob\/nightly: --sidecar container would keep/);
    const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "once" }, spec: { ...workload().spec.template.spec, restartPolicy: "OnFailure" } };
    expect(injectError(pod, { sidecar: "container" })).toMatch(/^pod\/once: --sidecar container would keep/);
    expect(names((inject(pod) as Json).spec.initContainers)).toEqual(["sidecar-proxy"]);
    expect(names((inject({ ...pod, spec: { ...pod.spec, restartPolicy: "Always" } }, { sidecar: "container" }) as Json).spec.containers)).toEqual(["web", "sidecar-proxy"]);
  });

  test("init containers: malformed, a native sidecar's ports, a workload that is only the sidecar", () => {
    const d = workload();
    podSpec(d).initContainers = { name: "migrate" };
    expect(injectError(d)).toBe("deployment/web: spec.template.spec.initContainers is not a list of containers");
    const p = workload();
    podSpec(p).initContainers = [{ name: "fetch", image: "busybox", ports: [{ containerPort: 4140 }] }];
    expect(injectError(p)).toBe(`deployment/web: container "fetch" uses port 4140, which the sidecar's proxy-out-port needs; change one of them`);
    // A regular init container has exited before a regular sidecar container starts.
    expect(container(inject(p, { sidecar: "container" }), "fetch").ports).toEqual([{ containerPort: 4140 }]);
    const only = workload();
    podSpec(only).containers = [{ name: "sidecar-proxy", image: "x" }];
    expect(injectError(only)).toBe("deployment/web has no containers besides sidecar-proxy in spec.template.spec.containers");
  });

  test("no pod template, no containers", () => {
    expect(injectError({ kind: "Deployment", metadata: { name: "web" }, spec: {} })).toBe("deployment/web has no spec.template object");
    const d = workload();
    podSpec(d).containers = [];
    expect(injectError(d)).toBe("deployment/web has no containers in spec.template.spec.containers");
    delete podSpec(d).containers;
    expect(injectError(d)).toBe("deployment/web has no containers in spec.template.spec.containers");
  });

  test("invalid annotations: the same message the sidecar prints at start-up", () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ "sidecar.speedscale.com/proxy-port": "http" }, "invalid proxy-port \"http\" from annotation sidecar.speedscale.com/proxy-port in LOCATION: not a whole number; allowed: an integer 1-65535"],
      [{ "sidecar.speedscale.com/proxy-type": "transparent" }, "invalid proxy-type \"transparent\" from annotation sidecar.speedscale.com/proxy-type in LOCATION: transparent is not supported: sidecar-proxy is an inline proxy; use reverse, forward or dual; allowed: reverse, forward, dual"],
      [
        { "sidecar.speedscale.com/proxy-type": "forward", "sidecar.speedscale.com/proxy-protocol": "tcp" },
        "invalid proxy-protocol \"tcp\" from annotation sidecar.speedscale.com/proxy-protocol in LOCATION with proxy-type \"forward\" from annotation sidecar.speedscale.com/proxy-type in LOCATION: tcp applies only to a reverse proxy; allowed with forward: http, socks",
      ],
      [
        { "sidecar.speedscale.com/proxy-port": "8080", "sidecar.speedscale.com/proxyPort": "9090" },
        "conflicting annotations sidecar.speedscale.com/proxy-port=\"8080\" and sidecar.speedscale.com/proxyPort=\"9090\" in LOCATION; allowed: one of them, or both with the same value",
      ],
    ];
    for (const [annotations, expected] of cases) {
      expect(injectError(withAnnotations(annotations))).toBe(expected.replaceAll("LOCATION", "the pod template of deployment/web"));
      // At start-up, from the downward-API file holding the same annotations:
      const file = Object.entries(annotations)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join("\n");
      const startup = () => resolveConfig({ flags: { annotations: "/etc/podinfo/annotations" }, env: {}, readFile: () => file, stdoutIsTTY: false });
      expect(startup).toThrow(expected.replaceAll("LOCATION", "/etc/podinfo/annotations"));
    }
  });

  test("annotation values that are not strings, ports the pod cannot have", () => {
    expect(injectError(withAnnotations({ "sidecar.speedscale.com/proxy-port": 8080 }))).toBe(
      "deployment/web: annotation sidecar.speedscale.com/proxy-port is 8080; annotation values are strings (quote it)",
    );
    expect(injectError(withAnnotations({ "sidecar.speedscale.com/proxy-in-port": "0" }))).toBe(
      "deployment/web: proxy-in-port 0 (any free port) cannot be injected: the Service and the workload need a fixed port; allowed: 1-65535",
    );
    const d = workload();
    podSpec(d).containers[0].ports = [{ containerPort: 4100 }];
    expect(injectError(d)).toBe(`deployment/web: container "web" uses port 4100, which the sidecar's admin port (--admin-port) needs; change one of them`);
    const e = withAnnotations({ "sidecar.speedscale.com/proxy-in-port": "8080", "sidecar.speedscale.com/proxy-port": "8081" });
    expect(injectError(e)).toBe(`deployment/web: container "web" uses port 8080, which the sidecar's proxy-in-port needs; change one of them`);
  });

  test("malformed pod template parts", () => {
    const d = workload();
    podSpec(d).containers[0].env = { HTTP_PROXY: "x" };
    expect(injectError(d)).toBe(`deployment/web: env of container "web" is not a list`);
    const v = workload();
    podSpec(v).volumes = {};
    expect(injectError(v)).toBe("deployment/web spec.template.spec.volumes is not a list");
    expect(injectError(withAnnotations("a=b" as unknown as Record<string, unknown>))).toBe("deployment/web: spec.template.metadata.annotations is not an object");
  });
});

describe("sidecar-proxy inject (CLI)", () => {
  const expected = JSON.stringify(inject(workload()), null, 2) + "\n";

  test("inject -f deploy/workload.json prints the injected Deployment as JSON", async () => {
    const r = await runProxyOnce(["inject", "-f", WORKLOAD_PATH]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(expected);
    expect(JSON.parse(r.stdout)).toEqual(exampleDeployment);
  });

  test("stdin (no -f, and -f -), --image, and its own output again", async () => {
    const viaStdin = async (args: string[], input: string) => {
      const proc = Bun.spawn(proxyCommand(["inject", ...args]), { env: cleanEnv(), stdin: new Blob([input]), stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      const [stdout, stderr, exitCode] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      return { stdout, stderr, exitCode };
    };
    const text = readFileSync(WORKLOAD_PATH, "utf8");
    const plain = await viaStdin([], text);
    expect(plain).toEqual({ stdout: expected, stderr: "", exitCode: 0 });
    const again = await viaStdin(["-f", "-"], plain.stdout);
    expect(again).toEqual({ stdout: expected, stderr: "", exitCode: 0 });
    const image = await viaStdin(["--image=registry.example.com/sp:1"], text);
    expect(image.exitCode).toBe(0);
    expect(JSON.parse(image.stdout).spec.template.spec.initContainers[0].image).toBe("registry.example.com/sp:1");
    const regular = await viaStdin(["--sidecar", "container"], text);
    expect(regular).toEqual({ stdout: JSON.stringify(inject(workload(), { sidecar: "container" }), null, 2) + "\n", stderr: "", exitCode: 0 });
    expect(JSON.parse(regular.stdout).spec.template.spec.containers[1].name).toBe("sidecar-proxy");
  });

  test("invalid input and flags: exit 2, one line on stderr", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sidecar-proxy-inject-"));
    try {
      const yaml = join(dir, "d.yaml");
      writeFileSync(yaml, "apiVersion: apps/v1\nkind: Deployment\n");
      const bad = join(dir, "bad.json");
      writeFileSync(bad, JSON.stringify(withAnnotations({ "sidecar.speedscale.com/proxy-type": "sideways" })));
      const cases: Array<[string[], RegExp]> = [
        [["inject", "-f", yaml], /^sidecar-proxy: .*d\.yaml is not JSON \(this looks like YAML\): .*kubectl get deploy NAME -o json/],
        [["inject", "-f", bad], /^sidecar-proxy: invalid proxy-type "sideways" from annotation sidecar\.speedscale\.com\/proxy-type in the pod template of deployment\/web: /],
        [["inject", "-f", join(dir, "missing.json")], /^sidecar-proxy: cannot read ".*missing\.json" \(from flag --file\): /],
        [["inject", "--proxy-type", "forward"], /^sidecar-proxy: unknown option --proxy-type \(inject takes -f\/--file, --image, --sidecar\)$/],
        [["inject", "-f"], /^sidecar-proxy: option --file needs a value: --file FILE /],
        [["inject", "-f", WORKLOAD_PATH, "--file", WORKLOAD_PATH], /^sidecar-proxy: option --file is given more than once$/],
        [["inject", "-f", WORKLOAD_PATH, "--sidecar", "sideways"], /^sidecar-proxy: invalid --sidecar "sideways"; allowed: native .*, container /],
        [["inject", WORKLOAD_PATH], /^sidecar-proxy: unexpected argument #2; /],
        [["--proxy-type", "forward", "inject"], /^sidecar-proxy: the command inject must come first: sidecar-proxy inject \[flags\]$/],
      ];
      for (const [args, pattern] of cases) {
        const r = await runProxyOnce(args);
        expect(r.stdout).toBe("");
        expect(r.stderr.trimEnd()).toMatch(pattern);
        expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
        expect(r.exitCode).toBe(2);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("inject --help says JSON only and names the flags", async () => {
    const r = await runProxyOnce(["inject", "--help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("Reads JSON only (no YAML)");
    expect(r.stdout).toContain("-f, --file=<FILE>");
    expect(r.stdout).toContain("--image=<IMAGE>");
    expect(r.stdout).toContain("--sidecar=<native|container>");
  });
});
