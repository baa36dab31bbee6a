import { utcDayStart } from '../shared/index.js';

const DAY_MS = 86_400_000;

/** One provider's daily caps while a source warms up. */
export interface WarmupProvider {
  readonly name: string;
  readonly domains: ReadonlySet<string>;
  readonly mx: readonly string[];
  /** Recipients per UTC day: day 1 first; none after the last. */
  readonly daily: readonly number[];
}

/** A source's warm-up: its first day, and the caps per provider. */
export interface Warmup {
  readonly source: string;
  /** Midnight (UTC) of day 1. */
  readonly start: number;
  readonly providers: readonly WarmupProvider[];
}

/** What today's warm-up allows one destination from one source. */
export interface WarmupCap {
  readonly source: string;
  readonly provider: string;
  /** The UTC day counted ("2026-12-03"). */
  readonly day: string;
  /** 1 on the first day. */
  readonly dayNumber: number;
  readonly cap: number;
  /** When the next day's count begins. */
  readonly nextDayAt: number;
}

const hostedAt = (hosts: readonly string[], suffix: string): boolean =>
  hosts.some((h) => h === suffix || h.endsWith(`.${suffix}`));

/**
 * The cap that applies to `domain` (its MX hosts `mxHosts`) from a warming source today, or null
 * when none does: no provider entry covers it, or the schedule is over for its provider.
 */
export function warmupCap(
  warmup: Warmup,
  domain: string,
  mxHosts: readonly string[],
  now: number,
): WarmupCap | null {
  const provider =
    warmup.providers.find((p) => p.domains.has(domain)) ??
    warmup.providers.find((p) => p.mx.some((s) => hostedAt(mxHosts, s))) ??
    warmup.providers.find((p) => p.domains.size === 0 && p.mx.length === 0);
  if (!provider) return null;
  const today = utcDayStart(now);
  // Before its start the schedule is on day 1: a source is never less new than that.
  const index = Math.max(0, Math.floor((today - warmup.start) / DAY_MS));
  const cap = provider.daily[index];
  if (cap === undefined) return null;
  return {
    source: warmup.source,
    provider: provider.name,
    day: new Date(today).toISOString().slice(0, 10),
    dayNumber: index + 1,
    cap,
    nextDayAt: today + DAY_MS,
  };
}

/** The warm-up of each source that has one, from the [[egress]] tables. */
export function warmupsOf(
  sources: readonly {
    readonly name: string;
    readonly warmup_start?: string | undefined;
    readonly warmup: readonly {
      readonly provider: string;
      readonly domains: readonly string[];
      readonly mx: readonly string[];
      readonly daily: readonly number[];
    }[];
  }[],
): Map<string, Warmup> {
  const out = new Map<string, Warmup>();
  for (const s of sources) {
    if (s.warmup.length === 0 || s.warmup_start === undefined) continue;
    out.set(s.name, {
      source: s.name,
      start: Date.parse(`${s.warmup_start}T00:00:00Z`),
      providers: s.warmup.map((p) => ({
        name: p.provider,
        domains: new Set(p.domains.map((d) => d.toLowerCase())),
        mx: p.mx.map((m) => m.toLowerCase()),
        daily: p.daily,
      })),
    });
  }
  return out;
}
