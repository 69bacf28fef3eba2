/**
 * Finding and parsing each option's value: flags > env > annotations file > default (SPEC §2),
 * recording where every value came from. Options that share one setting (--auth/--auth-file,
 * --admin-port/--no-admin) are combined here. Pure: files are read through input.readFile.
 */
import type { Config, ResolveInput, Source, SourceEntry } from "../config.ts";
import { DEFAULT_LIMITS, type Limits } from "../limits.ts";
import { misspeltAnnotation, parseAnnotations } from "./annotations.ts";
import { ConfigError, InvalidValue } from "./error.ts";
import { quote } from "../text.ts";
import { OPTIONS, type OptionSpec, optionByFlag } from "./options.ts";
import * as v from "./values.ts";

/** A value found for an option, before parsing. */
interface Raw {
  readonly text: string;
  readonly source: Source;
  /** `flag --x`, `env X`, `annotation K in F`, `default`. */
  readonly origin: string;
}

const MASK = "***";
const MAX_CREDENTIAL_BYTES = 255; // RFC 1929: ULEN and PLEN are one octet

export class Resolver {
  readonly sources: Record<string, SourceEntry> = {};
  /** What was read but not used, for the operator (logged at start-up, printed by `config`). */
  readonly warnings: string[] = [];
  annotationsFile: string | null = null;
  private annotations: ReadonlyMap<string, string> = new Map();
  private readonly raws = new Map<string, Raw | null>();

  constructor(private readonly input: ResolveInput) {}

  loadAnnotations(): void {
    const raw = this.lookup(spec("annotations"));
    if (raw === null) {
      this.sources.annotationsFile = { value: null, source: "default" };
      return;
    }
    const path = this.parse(spec("annotations"), raw, v.nonEmpty);
    this.record("annotationsFile", path, raw);
    this.annotationsFile = path;
    let text: string;
    try {
      text = this.input.readFile(path);
    } catch (err) {
      throw new ConfigError(`cannot read annotations file ${quote(path)} (from ${raw.origin}): ${errorText(err)}`);
    }
    try {
      this.annotations = parseAnnotations(text);
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`annotations file ${quote(path)} (from ${raw.origin}), ${err.message}`);
      throw err;
    }
    for (const key of this.annotations.keys()) {
      const meant = misspeltAnnotation(key);
      if (meant !== null) this.warnings.push(`annotation ${key} in ${path} is not a setting of sidecar-proxy and is ignored; did you mean ${meant}?`);
    }
  }

  /** An option that always has a value (it has a default). */
  get<T>(flag: string, parse: v.Parser<T>): T {
    const value = this.optional(flag, parse);
    if (value === null) throw new Error(`bug: option --${flag} has no default`);
    return value;
  }

  /** An option that may be unset (null). */
  optional<T>(flag: string, parse: v.Parser<T>): T | null {
    const option = spec(flag);
    const raw = this.lookup(option);
    if (raw === null) {
      this.sources[option.key] = { value: null, source: "default" };
      return null;
    }
    const value = this.parse(option, raw, parse);
    this.record(option.key, value, raw);
    return value;
  }

  limits(parsers: { readonly [K in keyof Limits]: v.Parser<number> }): Limits {
    const limits = { ...DEFAULT_LIMITS };
    for (const key of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
      const option = OPTIONS.find((o) => o.key === key);
      if (option !== undefined) limits[key] = this.get(option.flag, parsers[key]);
    }
    return Object.freeze(limits);
  }

  computedDefault<T>(key: string, value: T): T {
    this.sources[key] = { value, source: "default" };
    return value;
  }

  /** --auth / --auth-file (same setting): the highest source wins; both at one level is an error. */
  auth(): Config["auth"] {
    const inline = this.lookup(spec("auth"));
    const file = this.lookup(spec("auth-file"));
    const raw = higher(inline, file, () => new ConfigError(`auth and auth-file are both given (${inline?.origin}, ${file?.origin}); allowed: one of them`));
    const useFile = raw !== null && raw === file;
    if (raw === null) {
      this.sources.auth = { value: null, source: "default" };
      return null;
    }
    let text = raw.text;
    if (useFile) {
      const path = this.parse(spec("auth-file"), raw, v.nonEmpty);
      try {
        // A byte-order mark (editors on Windows write one) is not part of the user name.
        text = this.input.readFile(path).replace(/^\uFEFF/, "").replace(/(\r?\n)+$/, "");
      } catch (err) {
        throw new ConfigError(`cannot read auth-file ${quote(path)} (from ${raw.origin}): ${errorText(err)}`);
      }
    }
    const auth = Object.freeze(splitCredentials(text, raw.origin, spec(useFile ? "auth-file" : "auth").allowed));
    this.record("auth", { username: auth.username, password: MASK }, raw);
    return auth;
  }

  /**
   * --admin-port / --no-admin (same setting, as --auth / --auth-file): the highest source wins;
   * an explicit port and no-admin at one level is an error. A default port never conflicts.
   */
  adminPort(): number | null {
    const off = this.optional("no-admin", v.boolean);
    const offRaw = this.lookup(spec("no-admin"));
    const portRaw = this.lookup(spec("admin-port"));
    const explicitPort = portRaw?.source === "default" ? null : portRaw;
    const conflict = () => new ConfigError(`admin-port ${quote(explicitPort?.text ?? "")} from ${explicitPort?.origin} conflicts with no-admin from ${offRaw?.origin}; allowed: one of them`);
    if (off !== true || higher(offRaw, explicitPort, conflict) !== offRaw) return this.get("admin-port", v.portNumber);
    this.sources.adminPort = { ...this.sources.adminPort, value: null } as SourceEntry;
    return null;
  }

  private record(key: string, value: unknown, raw: Raw): void {
    this.sources[key] = raw.source === "default" ? { value, source: raw.source } : { value, source: raw.source, from: raw.origin };
  }

  private parse<T>(option: OptionSpec, raw: Raw, parse: v.Parser<T>): T {
    try {
      return parse(raw.text);
    } catch (err) {
      if (!(err instanceof InvalidValue)) throw err;
      throw new ConfigError(`invalid ${option.flag} ${quote(raw.text)} from ${raw.origin}: ${err.message}; allowed: ${option.allowed}`);
    }
  }

  /** The text for an option from the highest source that has one, or null. */
  lookup(option: OptionSpec): Raw | null {
    const cached = this.raws.get(option.flag);
    if (cached !== undefined) return cached;
    const raw = this.find(option);
    this.raws.set(option.flag, raw);
    return raw;
  }

  private find(option: OptionSpec): Raw | null {
    const flag = this.input.flags[option.flag];
    if (flag !== undefined) {
      if (typeof flag === "boolean") {
        if (option.type !== "boolean") throw new ConfigError(`option --${option.flag} needs a value`);
        return { text: String(flag), source: "flag", origin: `flag --${option.flag}` };
      }
      return { text: flag, source: "flag", origin: `flag --${option.flag}` };
    }
    const env = this.input.env[option.env];
    if (env !== undefined && env !== "") {
      const link = serviceLink(option.env, env, this.input.env);
      if (link === null) return { text: env, source: "env", origin: `env ${option.env}` };
      this.warnings.push(
        `env ${option.env}=${quote(env)} ignored: it is the Kubernetes service link of Service ${quote(link)} (${option.env.slice(0, -"_PORT".length)}_SERVICE_HOST is set), not a setting; set enableServiceLinks: false in the pod spec, or rename the Service`,
      );
    }
    const found = option.annotations.flatMap((key) => {
      const text = this.annotations.get(key);
      return text === undefined || text === "" ? [] : [{ key, text }];
    });
    const [first, second] = found;
    if (first !== undefined) {
      if (second !== undefined && second.text !== first.text) {
        throw new ConfigError(
          `conflicting annotations ${first.key}=${quote(first.text)} and ${second.key}=${quote(second.text)} in ${this.annotationsFile}; allowed: one of them, or both with the same value`,
        );
      }
      return { text: first.text, source: "annotation", origin: `annotation ${first.key} in ${this.annotationsFile}` };
    }
    if (option.default !== null) return { text: option.default, source: "default", origin: "default" };
    return null;
  }
}

/**
 * The kubelet gives every container `<SERVICE>_PORT=tcp://IP:PORT` (and `<SERVICE>_SERVICE_HOST`)
 * for each Service of its namespace, unless the pod sets `enableServiceLinks: false`. A Service
 * named `sidecar-proxy`, `sidecar-proxy-in`, `sidecar-proxy-out` or `sidecar-admin` would so set
 * our SIDECAR_PROXY_PORT, SIDECAR_PROXY_IN_PORT, SIDECAR_PROXY_OUT_PORT or SIDECAR_ADMIN_PORT,
 * above the pod's annotations, and stop every sidecar of the namespace at start-up. Such a value
 * (a URL, which no port setting accepts) next to its `_SERVICE_HOST` is recognised and ignored.
 * Returns the Service's name as the kubelet derived the variables from, or null.
 */
function serviceLink(name: string, value: string, env: ResolveInput["env"]): string | null {
  if (!/^(?:tcp|udp|sctp):\/\/\S+:\d+$/.test(value)) return null;
  return linkedService(name, env)?.toLowerCase().replace(/_/g, "-") ?? null;
}

/** Service-link variable names (`<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT_80_TCP_ADDR`, ...): group 1 is `<SERVICE>`. */
const SERVICE_LINK_NAME = /^(.+?)_(?:SERVICE_HOST|SERVICE_PORT(?:_[A-Z0-9_]+)?|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_PROTO|_PORT|_ADDR)?)?)$/;

/**
 * The `<SERVICE>` prefix of a variable the kubelet set for a Service (a service-link name whose
 * Service's `_SERVICE_HOST` is set too), or null.
 */
export function linkedService(name: string, env: ResolveInput["env"]): string | null {
  const service = SERVICE_LINK_NAME.exec(name)?.[1];
  return service !== undefined && env[`${service}_SERVICE_HOST`] !== undefined ? service : null;
}

export function spec(flag: string): OptionSpec {
  const option = optionByFlag(flag);
  if (option === undefined) throw new Error(`bug: no option --${flag}`);
  return option;
}

function rank(source: Source): number {
  return ["flag", "env", "annotation", "default"].indexOf(source);
}

/**
 * Of two options that set one setting, the one from the higher source (SPEC §2: flags,
 * environment, annotations file, defaults), or null when neither is given. Both from one level
 * cannot be ordered: `conflict` is thrown.
 */
function higher(a: Raw | null, b: Raw | null, conflict: () => ConfigError): Raw | null {
  if (a === null || b === null) return a ?? b;
  if (a.source === b.source) throw conflict();
  return rank(a.source) < rank(b.source) ? a : b;
}

/** USER:PASSWORD split at the first colon (RFC 7617 §2: user-ids cannot contain ":"). */
function splitCredentials(text: string, origin: string, allowed: string): { username: string; password: string } {
  const colon = text.indexOf(":");
  const fail = (why: string) => new ConfigError(`invalid auth from ${origin}: ${why}; allowed: ${allowed}`);
  if (/[\r\n]/.test(text)) throw fail("more than one line");
  if (colon === -1) throw fail("no colon between user and password");
  const username = text.slice(0, colon);
  const password = text.slice(colon + 1);
  const enc = new TextEncoder();
  if (username === "") throw fail("the user is empty");
  if (password === "") throw fail("the password is empty");
  if (enc.encode(username).length > MAX_CREDENTIAL_BYTES) throw fail("the user is longer than 255 bytes");
  if (enc.encode(password).length > MAX_CREDENTIAL_BYTES) throw fail("the password is longer than 255 bytes");
  return { username, password };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
