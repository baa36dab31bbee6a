import { statfsSync } from 'node:fs';
import type { HotOp } from './hot-ops.js';
import type { Writer } from './writer.js';

/** Room beyond the refused write itself: WAL frame headers, index pages, the checkpoint's copy. */
const SLACK_BYTES = 1024 * 1024;

/**
 * Remembers the last write refused for want of space (PETREL_SPOOL_FULL). Readiness's own probe
 * writes a few bytes, which can still fit in the WAL while every message is refused; so while a
 * refusal stands, the spool is ready again only once a message is stored, or the filesystem has
 * room for the write that was refused.
 */
export interface SpaceWatch {
  /** The writer whose outcomes are watched. */
  readonly writer: Writer;
  /** True while a refusal stands and the filesystem still lacks room for it. */
  short(): boolean;
  /** Ends a standing refusal (the probe wrote after room returned). */
  clear(): void;
  /** Whether the filesystem has room for a write of `bytes` (the rule short() applies). */
  roomFor(bytes: number): boolean;
}

export function watchSpace(inner: Writer, dir: string, onShort?: (bytes: number) => void): SpaceWatch {
  let wanted: number | null = null;
  const free = (): number => {
    try {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    } catch {
      return 0;
    }
  };
  return {
    writer: {
      run(op) {
        const bytes = bodyBytes(op);
        return inner.run(op).then(
          (value) => {
            if (op.op === 'insert' || op.op === 'stage') wanted = null;
            return value;
          },
          (err: unknown) => {
            if ((err as { code?: unknown }).code === 'PETREL_SPOOL_FULL') {
              wanted = Math.max(wanted ?? 0, bytes);
              onShort?.(bytes);
            }
            throw err;
          },
        );
      },
      close: () => inner.close(),
    },
    short: () => wanted !== null && free() < 2 * wanted + SLACK_BYTES,
    clear() {
      wanted = null;
    },
    roomFor: (bytes) => free() >= 2 * bytes + SLACK_BYTES,
  };
}

function bodyBytes(op: HotOp): number {
  if (op.op === 'insert') return op.message.body.length;
  if (op.op === 'stage') return op.copies.reduce((n, c) => n + c.message.body.length, 0);
  if (op.op === 'complete') return op.followUps.reduce((n, f) => n + f.message.body.length, 0);
  return 0;
}
