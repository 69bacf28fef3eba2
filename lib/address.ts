/**
 * Address text shared by logs, headers and runtime adapters: a dual-stack socket reports an IPv4
 * peer as `::ffff:a.b.c.d`, shown everywhere as the IPv4 address it is; `host:port` puts IPv6
 * hosts in brackets (RFC 3986 §3.2.2).
 */
const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const COLON = 0x3a;

/** `::ffff:a.b.c.d` -> `a.b.c.d`; anything else unchanged. Called per connection: no regex unless it may match. */
export function unmapIPv4(address: string): string {
  if (address.length < 14 || address.charCodeAt(0) !== COLON) return address;
  const m = MAPPED_V4.exec(address);
  return m ? m[1]! : address;
}

/** `host:port`, `[v6]:port`. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
}
