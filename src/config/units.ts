import { BlockList, isIP } from 'node:net';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };

/** "90s", "10m", "3d" → milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text);
  if (!m) return null;
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!);
}

/** "25MB", "512kb", "1000" → bytes; null when malformed. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(text);
  if (!m) return null;
  return Math.round(Number(m[1]) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase()]!);
}

/** A host and port to bind; IPv6 hosts are written in brackets: `[::1]:2587`. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** "127.0.0.1:2587", "[::1]:25", "0.0.0.0:587" → {host, port}; null when malformed. */
export function parseListen(text: string): ListenAddress | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  return { host: (m[1] ?? m[2])!, port };
}

/** A CIDR block, checked by node:net's BlockList. */
export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly address: string;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr | null {
  const [addr, prefixText, extra] = text.trim().split('/');
  if (addr === undefined || extra !== undefined) return null;
  const family = isIP(addr);
  if (family !== 4 && family !== 6) return null;
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefixText === '' || !Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
  return { text, family, address: addr, prefix };
}

// Config is frozen and lists of blocks live as long as it does: one BlockList per list.
const blockLists = new WeakMap<readonly Cidr[], BlockList>();

/** True when `ip` (v4, v6 or v4-mapped v6) lies in any of the blocks. */
export function ipInCidrs(ip: string, cidrs: readonly Cidr[]): boolean {
  let list = blockLists.get(cidrs);
  if (!list) {
    list = new BlockList();
    for (const c of cidrs) list.addSubnet(c.address, c.prefix, c.family === 4 ? 'ipv4' : 'ipv6');
    blockLists.set(cidrs, list);
  }
  const plain = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
  const family = isIP(plain);
  if (family === 0) return false;
  return list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** A name for EHLO and Received: dot-separated labels of letters, digits and inner hyphens. */
export function isHostName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => LABEL.test(label));
}
