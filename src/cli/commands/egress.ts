import type { Command } from 'commander';
import { warmupsOf } from '../../queue/index.js';
import { configFor, globals, print, withSpool } from '../context.js';

const DAY_MS = 86_400_000;

export function register(program: Command): void {
  const egress = program.command('egress').description('outbound sources ([[egress]]) and their warm-up');

  egress
    .command('status')
    .description(
      "each source: its address, EHLO name, and today's (UTC) warm-up caps and counts per provider",
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFor(cmd);
      const now = Date.now();
      const today = new Date(now).toISOString().slice(0, 10);
      const usage = await withSpool(cmd, (spool) => spool.egress.usage(today));
      const warmups = warmupsOf(config.egress);
      const rows = config.egress.map((e) => {
        const w = warmups.get(e.name);
        const index = w ? Math.max(0, Math.floor((Date.parse(`${today}T00:00:00Z`) - w.start) / DAY_MS)) : 0;
        return {
          name: e.name,
          localAddress: e.local_address,
          ehlo: e.ehlo ?? config.hostname,
          warmupDay: w ? index + 1 : null,
          providers: (w?.providers ?? []).map((p) => ({
            provider: p.name,
            cap: p.daily[index] ?? null,
            sentToday: usage.find((u) => u.source === e.name && u.provider === p.name)?.sent ?? 0,
          })),
        };
      });
      if (globals(cmd).json) {
        print(JSON.stringify(rows));
        return;
      }
      if (rows.length === 0) print('no [[egress]] sources: mail goes out from the address the machine picks');
      for (const r of rows) {
        print(
          `${r.name}: from ${r.localAddress}, EHLO ${r.ehlo}${r.warmupDay ? `, warm-up day ${r.warmupDay}` : ''}`,
        );
        for (const p of r.providers)
          print(
            `  ${p.provider}: ${p.sentToday} sent today of ${p.cap === null ? 'no cap (warmed up)' : p.cap}`,
          );
      }
    });
}
