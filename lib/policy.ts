/**
 * Address policy with ip-address: `--allow-clients` (checked at accept) and
 * `--deny-destinations` (checked on the address actually dialled, after DNS).
 * IPv4, IPv6 and IPv4-mapped IPv6 (`::ffff:a.b.c.d`, how a `::` listener reports IPv4 clients)
 * are matched alike: a mapped address is compared as the IPv4 address it carries.
 */
import { Address4, Address6 } from "ip-address";

/**
 * `--deny-destinations private`: everything that is not the public internet from a pod's view.
 * Loopback, "this network", link-local (incl. the 169.254.169.254 metadata service), RFC 1918,
 * CGNAT shared space (RFC 6598), IPv6 loopback/unspecified, ULA (RFC 4193) and link-local.
 */
export const PRIVATE_PRESET: readonly string[] = Object.freeze([
  "0.0.0.0/8",
  "127.0.0.0/8",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "169.254.0.0/16",
  "100.64.0.0/10",
  "::/128",
  "::1/128",
  "fc00::/7",
  "fe80::/10",
]);

type Net = Address4 | Address6;

/** Parses an address or CIDR; throws an Error naming the bad text. */
export function parseNet(text: string): Net {
  const t = text.trim();
  if (Address4.isValid(t)) return new Address4(t.includes("/") ? t : `${t}/32`);
  if (Address6.isValid(t)) {
    const net = new Address6(t.includes("/") ? t : `${t}/128`);
    // A mapped IPv4 network is matched as IPv4 (::ffff:10.0.0.0/104 == 10.0.0.0/8).
    if (net.isMapped4() && net.subnetMask >= 96) return new Address4(`${net.to4().correctForm()}/${net.subnetMask - 96}`);
    return net;
  }
  throw new Error(`not an IP address or CIDR: ${JSON.stringify(text)}`);
}

/** Expands preset words ("private") and parses every entry. */
function parseNets(entries: readonly string[]): Net[] {
  const nets: Net[] = [];
  for (const entry of entries) {
    if (entry.trim().toLowerCase() === "private") nets.push(...PRIVATE_PRESET.map(parseNet));
    else nets.push(parseNet(entry));
  }
  return nets;
}

/** NAT64 well-known prefix (RFC 6052) and 6to4 (RFC 3056): IPv6 that carries an IPv4 address. */
const NAT64 = new Address6("64:ff9b::/96");
/** IPv4-compatible IPv6 (RFC 4291 §2.5.5.1, deprecated): ::a.b.c.d. */
const COMPATIBLE = new Address6("::/96");
const SIX_TO_FOUR = new Address6("2002::/16");

/**
 * Parses a peer address (from a socket or resolver) into a host address. IPv6 forms that carry
 * an IPv4 address — mapped (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:AABB:CCDD::)
 * and IPv4-compatible (::a.b.c.d) — are matched as that IPv4 address, so 64:ff9b::a9fe:a9fe is
 * 169.254.169.254 to the policy.
 */
function parseHost(address: string): Net | null {
  const a = address.startsWith("[") ? address.slice(1, -1) : address;
  if (Address4.isValid(a)) return new Address4(a);
  if (!Address6.isValid(a)) return null;
  const six = new Address6(a.replace(/%.*$/, ""));
  if (six.isMapped4()) return six.to4();
  if (six.isInSubnet(NAT64)) return six.to4();
  // ::, ::1 and ::0.x.y.z are not IPv4-compatible forms: they stay IPv6.
  if (six.isInSubnet(COMPATIBLE)) {
    const four = six.to4();
    if (four.toArray()[0] !== 0) return four;
  }
  if (six.isInSubnet(SIX_TO_FOUR)) return Address4.fromHex(six.toUnsignedByteArray().slice(2, 6).map((b) => b.toString(16).padStart(2, "0")).join(""));
  return six;
}

export type AddressMatcher = (address: string) => boolean;

/**
 * Answers remembered per matcher. ip-address takes 1-10 us to parse and match one address (IPv4
 * least, mapped IPv6 most; `bun` on this machine), paid on every accept (--allow-clients) and
 * dial (--deny-destinations); a sidecar sees few distinct clients and destinations, so a lookup
 * answers nearly all of them. Bounded: when full it is emptied and refilled.
 */
export const MATCH_CACHE_MAX = 1024;

/** True when the address falls in any of the networks. Unparseable addresses never match. */
export function createMatcher(entries: readonly string[]): AddressMatcher {
  const nets = parseNets(entries);
  const v4 = nets.filter((n): n is Address4 => n instanceof Address4);
  const v6 = nets.filter((n): n is Address6 => n instanceof Address6);
  const matches = (address: string): boolean => {
    const host = parseHost(address);
    if (host === null) return false;
    if (host instanceof Address4) return v4.some((net) => host.isHostInSubnet(net));
    return v6.some((net) => host.isHostInSubnet(net));
  };
  const known = new Map<string, boolean>();
  return (address: string) => {
    let answer = known.get(address);
    if (answer === undefined) {
      answer = matches(address);
      if (known.size >= MATCH_CACHE_MAX) known.clear();
      known.set(address, answer);
    }
    return answer;
  };
}
