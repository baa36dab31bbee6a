import { createSocket, type RemoteInfo } from 'node:dgram';
import { createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * What the server knows about one name. A name absent from the zone answers NXDOMAIN; a name
 * present without records of the type asked answers NOERROR with no answers (NODATA).
 */
export interface DnsEntry {
  readonly mx?: readonly { readonly preference: number; readonly exchange: string }[];
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
  /** One TXT record per item: a string (split into 255-byte character-strings) or its strings. */
  readonly txt?: readonly (string | readonly string[])[];
  /** PTR targets; the entry's name is the reverse name (see {@link reverseName}). */
  readonly ptr?: readonly string[];
  /** Answer every query for this name with this rcode instead. */
  readonly rcode?: 'SERVFAIL' | 'REFUSED' | 'NXDOMAIN';
  /** Never answer (the client times out). */
  readonly drop?: boolean;
}

export interface DnsQuery {
  readonly name: string;
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
}

export interface TestDnsServer {
  /** "127.0.0.1:<port>", ready for Resolver.setServers / [dns] servers. */
  readonly server: string;
  readonly port: number;
  /** Every question received, in order. */
  readonly queries: DnsQuery[];
  /** Adds or replaces a name's records while the server runs. */
  set(name: string, entry: DnsEntry): void;
  close(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: 'A', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA' };
const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** Without EDNS a UDP answer holds 512 bytes; longer ones are truncated and retried over TCP. */
const UDP_LIMIT = 512;

/** "192.0.2.10" → "10.2.0.192.in-addr.arpa"; IPv6 → nibbles under ip6.arpa. */
export function reverseName(ip: string): string {
  if (ip.includes('.')) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const nibbles = ipv6Bytes(ip).toString('hex').split('');
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

/**
 * A minimal authoritative DNS responder on 127.0.0.1 (UDP, and TCP on the same port for answers
 * too long for UDP) for A, AAAA, MX, TXT and PTR: enough to test `petrel doctor` and MX routing
 * through a real `node:dns` Resolver without dnsmasq or the network.
 */
export async function startDnsServer(zone: Readonly<Record<string, DnsEntry>>): Promise<TestDnsServer> {
  const entries = new Map(
    Object.entries(zone).map(([name, entry]) => [name.toLowerCase().replace(/\.$/, ''), entry]),
  );
  const queries: DnsQuery[] = [];

  const answer = (msg: Buffer, transport: 'udp' | 'tcp'): Buffer | null => {
    const question = parseQuestion(msg);
    if (!question) return null;
    queries.push({ name: question.name, type: TYPES[question.qtype] ?? String(question.qtype), transport });
    const entry = entries.get(question.name);
    if (entry?.drop) return null;
    let rcode: number = RCODES.NOERROR;
    let answers: Buffer[] = [];
    if (!entry) rcode = RCODES.NXDOMAIN;
    else if (entry.rcode) rcode = RCODES[entry.rcode];
    else answers = answersFor(entry, question.qtype);
    const full = buildResponse(msg, question.end, rcode, answers, false);
    if (transport === 'udp' && full.length > UDP_LIMIT)
      return buildResponse(msg, question.end, rcode, [], true);
    return full;
  };

  const udp = createSocket('udp4');
  udp.on('message', (msg: Buffer, remote: RemoteInfo) => {
    const reply = answer(msg, 'udp');
    if (reply) udp.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', () => resolve()));
  const port = (udp.address() as AddressInfo).port;

  const sockets = new Set<Socket>();
  const tcp = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const len = buffered.readUInt16BE(0);
        const reply = answer(buffered.subarray(2, 2 + len), 'tcp');
        buffered = buffered.subarray(2 + len);
        if (!reply) continue;
        const head = Buffer.alloc(2);
        head.writeUInt16BE(reply.length, 0);
        socket.write(Buffer.concat([head, reply]));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });

  return {
    server: `127.0.0.1:${port}`,
    port,
    queries,
    set: (name, entry) => void entries.set(name.toLowerCase().replace(/\.$/, ''), entry),
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udp.close(() => resolve())),
        new Promise<void>((resolve) => tcp.close(() => resolve())),
      ]);
    },
  };
}

function parseQuestion(msg: Buffer): { name: string; qtype: number; end: number } | null {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return null;
  const labels: string[] = [];
  let offset = 12;
  while (offset < msg.length) {
    const len = msg[offset]!;
    offset += 1;
    if (len === 0) break;
    if (len > 63 || offset + len > msg.length) return null;
    labels.push(msg.toString('latin1', offset, offset + len));
    offset += len;
  }
  if (offset + 4 > msg.length) return null;
  return { name: labels.join('.').toLowerCase(), qtype: msg.readUInt16BE(offset), end: offset + 4 };
}

function encodeName(name: string): Buffer {
  const parts = name
    .replace(/\.$/, '')
    .split('.')
    .filter((p) => p.length > 0);
  return Buffer.concat([
    ...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])),
    Buffer.from([0]),
  ]);
}

function record(type: number, rdata: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0); // pointer to the question name
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4); // IN
  head.writeUInt32BE(60, 6);
  head.writeUInt16BE(rdata.length, 10);
  return Buffer.concat([head, rdata]);
}

function txtRdata(value: string | readonly string[]): Buffer {
  const strings: string[] = [];
  if (typeof value === 'string') {
    for (let i = 0; i < value.length; i += 255) strings.push(value.slice(i, i + 255));
    if (strings.length === 0) strings.push('');
  } else strings.push(...value);
  return Buffer.concat(
    strings.map((s) => {
      const bytes = Buffer.from(s, 'utf8');
      return Buffer.concat([Buffer.from([bytes.length]), bytes]);
    }),
  );
}

function answersFor(entry: DnsEntry, qtype: number): Buffer[] {
  if (qtype === 15) {
    return (entry.mx ?? []).map((mx) => {
      const pref = Buffer.alloc(2);
      pref.writeUInt16BE(mx.preference, 0);
      return record(15, Buffer.concat([pref, encodeName(mx.exchange)]));
    });
  }
  if (qtype === 1) return (entry.a ?? []).map((ip) => record(1, Buffer.from(ip.split('.').map(Number))));
  if (qtype === 28) return (entry.aaaa ?? []).map((ip) => record(28, ipv6Bytes(ip)));
  if (qtype === 16) return (entry.txt ?? []).map((t) => record(16, txtRdata(t)));
  if (qtype === 12) return (entry.ptr ?? []).map((name) => record(12, encodeName(name)));
  return [];
}

function ipv6Bytes(ip: string): Buffer {
  const [head = '', tail = ''] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function buildResponse(
  query: Buffer,
  questionEnd: number,
  rcode: number,
  answers: Buffer[],
  truncated: boolean,
): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  const rd = query.readUInt16BE(2) & 0x0100;
  // QR, AA, TC when cut short, RD echoed, RA
  header.writeUInt16BE(0x8000 | 0x0400 | (truncated ? 0x0200 : 0) | rd | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
}
