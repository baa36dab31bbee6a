import { readFileSync } from 'node:fs';

export interface OrderCheck {
  /** 250 replies to a final dot seen on the wire. */
  readonly transactions: number;
  /** 250 replies with no completed fsync/fdatasync of the WAL since the client's last read. */
  readonly violations: number;
}

const CALL = /^(\d+)\s+(read|write|writev|fsync|fdatasync)\((\d+)<(TCP:\[[^\]]*\]|[^>]*)>(.*)$/;
const RESUMED = /^(\d+)\s+<\.\.\. (read|write|writev|fsync|fdatasync) resumed>(.*)$/;
const RESULT = /\)\s+=\s+(-?\d+)/;

/**
 * Reads an `strace -f -yy` log of a server and checks, for every "250 … queued" reply written to
 * a client socket, that an fsync or fdatasync of a `-wal` file completed after the last read
 * from that socket (the one that brought the final dot) and before the reply's write began.
 * With -f the log interleaves threads in the order the kernel ran the calls; a call another
 * thread interrupted is split into "<unfinished ...>" and "<... resumed>" lines.
 */
export function checkFsyncBeforeReply(logPath: string, walSuffix = '-wal'): OrderCheck {
  const pending = new Map<string, { call: string; fd: string }>();
  const lastRead = new Map<string, number>();
  let lastSync = -1;
  let transactions = 0;
  let violations = 0;
  /** A 250 to a final dot: it must start after a WAL sync newer than the socket's last read. */
  const countReply = (call: string, fd: string, args: string): void => {
    if ((call !== 'write' && call !== 'writev') || !fd.startsWith('TCP')) return;
    if (!/"250 2\.0\.0 OK queued/.test(args)) return;
    transactions++;
    if (lastSync <= (lastRead.get(fd) ?? -1)) violations++;
  };
  const lines = readFileSync(logPath, 'latin1').split('\n');
  lines.forEach((line, index) => {
    let call: string;
    let fd: string;
    let rest: string;
    const m = CALL.exec(line);
    if (m) {
      call = m[2]!;
      fd = m[4]!;
      rest = m[5]!;
      if (rest.includes('<unfinished ...>')) {
        pending.set(m[1]!, { call, fd });
        // A write's data is printed at entry: its order is where it started.
        countReply(call, fd, rest);
        return;
      }
    } else {
      const r = RESUMED.exec(line);
      const p = r ? pending.get(r[1]!) : undefined;
      if (!r || !p) return;
      pending.delete(r[1]!);
      call = p.call;
      fd = p.fd;
      rest = r[3]!;
      if (call === 'write' || call === 'writev') return; // counted at entry
    }
    const result = Number(RESULT.exec(rest)?.[1] ?? -1);
    if ((call === 'fsync' || call === 'fdatasync') && fd.endsWith(walSuffix) && result === 0)
      lastSync = index;
    if (call === 'read' && fd.startsWith('TCP') && result > 0) lastRead.set(fd, index);
    countReply(call, fd, rest);
  });
  return { transactions, violations };
}
