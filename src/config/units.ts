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

/** A CIDR block in a parsed form that matching can use quickly. */
export interface Cidr {
  readonly text: string;
  readonly family: 4 | 6;
  readonly bits: bigint;
  readonly prefix: number;
}

export function parseCidr(text: string): Cidr | null {
  const [addr, prefixText] = text.trim().split('/');
  if (addr === undefined) return null;
  const parsed = ipToBigInt(addr);
  if (!parsed) return null;
  const max = parsed.family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) return null;
  return { text, family: parsed.family, bits: parsed.value, prefix };
}

/** True when `ip` (v4, v6 or v4-mapped v6) lies in any of the blocks. */
export function ipInCidrs(ip: string, cidrs: readonly Cidr[]): boolean {
  const parsed = ipToBigInt(ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip);
  if (!parsed) return false;
  return cidrs.some((c) => {
    if (c.family !== parsed.family) return false;
    const width = BigInt(c.family === 4 ? 32 : 128);
    const shift = width - BigInt(c.prefix);
    return parsed.value >> shift === c.bits >> shift;
  });
}

function ipToBigInt(ip: string): { family: 4 | 6; value: bigint } | null {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    const parts = ip.split('.').map(Number);
    if (parts.some((p) => p > 255)) return null;
    return { family: 4, value: parts.reduce((acc, p) => (acc << 8n) | BigInt(p), 0n) };
  }
  if (!/^[0-9a-fA-F:]+$/.test(ip) || !ip.includes(':')) return null;
  const halves = ip.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || missing < 0) return null;
  const groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  if (groups.some((g) => g.length > 4 || g === '')) return null;
  return { family: 6, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** A name for EHLO and Received: dot-separated labels of letters, digits and inner hyphens. */
export function isHostName(text: string): boolean {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => LABEL.test(label));
}
