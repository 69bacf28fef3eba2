/**
 * What is running: this release (package.json, bundled into the compiled binary) and the runtime
 * under it. Printed by `--version`, carried by the `ready` log line and by `sidecar_build_info`
 * (the Prometheus `*_build_info` convention), so a bug report or a fleet query can name both.
 */
import pkg from "../package.json" with { type: "json" };

export const VERSION: string = pkg.version;

/**
 * The container image `inject` puts in a pod by default: this release's own tag, as
 * `istioctl kube-inject` injects its own version. The sidecar then runs the release that
 * injected it; a `:latest` tag would make Kubernetes pull on every start and let two pods of one
 * Deployment run different builds.
 */
export const RELEASE_IMAGE = `sidecar-proxy:${VERSION}`;

/** "bun 1.4.4" or "deno 2.9.6": both set their entry in process.versions. */
export function runtimeVersion(): string {
  const v = process.versions as Record<string, string | undefined>;
  if (v.bun) return `bun ${v.bun}`;
  if (v.deno) return `deno ${v.deno}`;
  return `node ${v.node}`;
}
