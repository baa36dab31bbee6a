import type { SMTPServer } from 'smtp-server';

/**
 * Concurrent sessions per client IP. Only admitted sessions are released, so a refused
 * connection (which smtp-server still closes through onClose) never frees another's slot.
 */
export class PerIpLimit {
  readonly #open = new Map<string, number>();
  readonly #admitted = new Set<string>();

  constructor(private readonly max: number) {}

  /** Counts the session in; false (and nothing counted) when its IP is at the limit. */
  admit(sessionId: string, ip: string): boolean {
    const n = this.#open.get(ip) ?? 0;
    if (n >= this.max) return false;
    this.#open.set(ip, n + 1);
    this.#admitted.add(sessionId);
    return true;
  }

  release(sessionId: string, ip: string): void {
    if (!this.#admitted.delete(sessionId)) return;
    const n = (this.#open.get(ip) ?? 1) - 1;
    if (n <= 0) this.#open.delete(ip);
    else this.#open.set(ip, n);
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
