import { createSocket, type RemoteInfo } from 'node:dgram';
import type { AddressInfo } from 'node:net';

/** What the server knows about one name. A name absent from the zone answers NXDOMAIN. */
export interface DnsEntry {
  readonly mx?: readonly { readonly preference: number; readonly exchange: string }[];
  readonly a?: readonly string[];
  readonly aaaa?: readonly string[];
  /** Answer every query for this name with this rcode instead. */
  readonly rcode?: 'SERVFAIL' | 'REFUSED' | 'NXDOMAIN';
  /** Never answer (the client times out). */
  readonly drop?: boolean;
}

export interface DnsQuery {
  readonly name: string;
  readonly type: string;
}

export interface TestDnsServer {
  /** "127.0.0.1:<port>", ready for Resolver.setServers / [dns] servers. */
  readonly server: string;
  readonly port: number;
  /** Every question received, in order. */
  readonly queries: DnsQuery[];
  close(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: 'A', 15: 'MX', 28: 'AAAA' };
const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/**
 * A minimal authoritative DNS responder over UDP on 127.0.0.1 for MX, A and AAAA, enough to test
 * MX routing through a real `node:dns` Resolver without dnsmasq or the network.
 */
export async function startDnsServer(zone: Readonly<Record<string, DnsEntry>>): Promise<TestDnsServer> {
  const entries = new Map(
    Object.entries(zone).map(([name, entry]) => [name.toLowerCase().replace(/\.$/, ''), entry]),
  );
  const queries: DnsQuery[] = [];
  const socket = createSocket('udp4');

  socket.on('message', (msg: Buffer, remote: RemoteInfo) => {
    const question = parseQuestion(msg);
    if (!question) return;
    const type = TYPES[question.qtype] ?? String(question.qtype);
    queries.push({ name: question.name, type });
    const entry = entries.get(question.name);
    if (entry?.drop) return;
    let rcode: number = RCODES.NOERROR;
    let answers: Buffer[] = [];
    if (!entry) rcode = RCODES.NXDOMAIN;
    else if (entry.rcode) rcode = RCODES[entry.rcode];
    else answers = answersFor(entry, question.qtype);
    socket.send(buildResponse(msg, question.end, rcode, answers), remote.port, remote.address);
  });

  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  const port = (socket.address() as AddressInfo).port;
  return {
    server: `127.0.0.1:${port}`,
    port,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
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

function buildResponse(query: Buffer, questionEnd: number, rcode: number, answers: Buffer[]): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  const rd = query.readUInt16BE(2) & 0x0100;
  header.writeUInt16BE(0x8000 | 0x0400 | rd | 0x0080 | rcode, 2); // QR, AA, RD echoed, RA
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
}
