/** At most `count` events per window of `windowMs`: a rate as written ("100/s", "600/min"). */
export interface RateLimit {
  readonly count: number;
  readonly windowMs: number;
}

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
};

/** "600/min" → { count: 600, windowMs: 60000 }; null for anything else (such as "unlimited"). */
export function parseRateLimit(text: string): RateLimit | null {
  const m = /^(\d+)\/(s|sec|m|min|h|hour)$/.exec(text);
  if (!m) return null;
  const count = Number(m[1]);
  if (!Number.isSafeInteger(count)) return null;
  return { count, windowMs: UNIT_MS[m[2]!]! };
}

/** The rate as parseRateLimit reads it back ("100/s", "600/min", "5000/h"). */
export function formatRateLimit(rate: RateLimit): string {
  const unit = rate.windowMs === 1000 ? 's' : rate.windowMs === 60_000 ? 'min' : 'h';
  return `${rate.count}/${unit}`;
}
