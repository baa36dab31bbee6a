import { RawSmtp, type Reply } from '../helpers/smtp-client.js';

/** A distinct message whose body identifies it, so a torn or mixed-up copy cannot compare equal. */
export function message(tag: string, from = 'sender@loop.test', to = 'rcpt@dest.test'): string {
  return (
    `From: ${from}\r\nTo: ${to}\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@loop.test>\r\n` +
    `Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n${`body of ${tag}\r\n`.repeat(20)}`
  );
}

/** One plaintext transaction from a trusted network (no AUTH, so strace sees the replies). */
export async function sendOne(
  c: RawSmtp,
  body: string,
  to = 'rcpt@dest.test',
  from = 'sender@loop.test',
): Promise<Reply> {
  const mail = await c.command(`MAIL FROM:<${from}>`);
  if (mail.code !== 250) return mail;
  const rcpt = await c.command(`RCPT TO:<${to}>`);
  if (rcpt.code !== 250) return rcpt;
  return c.data(body);
}

/** Sends `count` messages over `sessions` parallel sessions; returns every final reply. */
export async function sendMany(port: number, count: number, sessions: number, tag: string): Promise<Reply[]> {
  const replies: Reply[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      const c = await RawSmtp.connect(port);
      await c.command('EHLO client.test');
      while (next < count) {
        const i = next++;
        replies.push(await sendOne(c, message(`${tag}-${i}`)));
      }
      c.close();
    }),
  );
  return replies;
}

/** Queue id of a 250 reply, or null. */
export const queueIdOf = (r: Reply): string | null =>
  r.code === 250 ? (/queued as (\S+)/.exec(r.text)?.[1] ?? null) : null;

/** TOML for a daemon that lets loopback submit without AUTH as account "loop" (loop.test). */
export const TRUSTED_LOOPBACK = `trusted_networks = ["127.0.0.0/8"]
trusted_account = "loop"
max_connections_per_ip = 1000`;
