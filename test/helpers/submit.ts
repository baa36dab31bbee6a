import { expect } from 'vitest';
import { RawSmtp } from './smtp-client.js';

/**
 * Submits `count` messages as account `app` over `sessions` parallel sessions, message i to
 * `r<i>@domain` with the subject "<tag> <i>"; every one must get a 250.
 */
export async function submitMany(
  port: number,
  domain: string,
  count: number,
  tag: string,
  sessions: number,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      const c = await RawSmtp.connect(port);
      await c.login('app', 'pw');
      for (let i = next++; i < count; i = next++) {
        await c.command('MAIL FROM:<sender@example.com>');
        await c.command(`RCPT TO:<r${i}@${domain}>`);
        const r = await c.data(`From: sender@example.com\r\nSubject: ${tag} ${i}\r\n\r\nbody ${i}\r\n`);
        expect(r.code).toBe(250);
      }
      c.close();
    }),
  );
}
