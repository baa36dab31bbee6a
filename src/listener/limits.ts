import type { SMTPServer } from 'smtp-server';
import type { SharedCounters } from '../shared/index.js';

/**
 * Concurrent sessions per client IP, counted in `counters` (the node's, when it has workers), so
 * that every listener and worker sharing them shares the cap. Only admitted sessions are
 * released, so a refused connection (which smtp-server still closes through onClose) never frees
 * another's slot; a session that closes while its admission is being decided gives the slot back
 * as soon as it is granted.
 */
export class PerIpLimit {
  readonly #admitted = new Map<string, () => void>();
  /** Sessions whose admission is under way: true once they closed meanwhile. */
  readonly #deciding = new Map<string, boolean>();

  constructor(
    private readonly counters: SharedCounters,
    /** Names what is counted, so that different listeners' caps stay apart. */
    private readonly scope: string,
    private readonly max: number,
  ) {}

  /** Counts the session in; false (and nothing counted) when its IP is at the limit. */
  async admit(sessionId: string, ip: string): Promise<boolean> {
    this.#deciding.set(sessionId, false);
    let release: (() => void) | null;
    try {
      release = await this.counters.tryTake(`${this.scope}:${ip}`, this.max);
    } catch (err) {
      this.#deciding.delete(sessionId);
      throw err;
    }
    const closed = this.#deciding.get(sessionId) === true;
    this.#deciding.delete(sessionId);
    if (!release) return false;
    if (closed) {
      release();
      return false;
    }
    this.#admitted.set(sessionId, release);
    return true;
  }

  release(sessionId: string): void {
    if (this.#deciding.has(sessionId)) {
      this.#deciding.set(sessionId, true);
      return;
    }
    const release = this.#admitted.get(sessionId);
    if (!release) return;
    this.#admitted.delete(sessionId);
    release();
  }
}

/**
 * Cuts a session whose DATA is still unfinished after `ms`: smtp-server re-arms its idle timer on
 * every byte, so a client dripping one byte at a time would otherwise hold the session for ever.
 * Returns the function that disarms it (call it when DATA ends).
 */
export function armDataDeadline(
  server: SMTPServer,
  sessionId: string,
  ms: number,
  onExpire: () => void,
): () => void {
  const timer = setTimeout(() => {
    onExpire();
    for (const conn of server.connections) {
      if (conn.id === sessionId) {
        conn.send(421, '4.4.2 DATA took too long, closing connection');
        conn.close();
      }
    }
  }, ms);
  timer.unref();
  return () => clearTimeout(timer);
}
