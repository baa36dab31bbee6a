import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizeDomain } from '../shared/index.js';
import { isHostName } from './units.js';

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** One provider's warm-up on one source: recipients per UTC day, day 1 first. */
const warmupSchema = z
  .strictObject({
    provider: z
      .string()
      .regex(NAME, 'letters, digits and . _ - only')
      .describe('A name for the provider, as status and logs show it ("gmail").'),
    domains: z
      .array(z.string().refine((d) => normalizeDomain(d) !== null, { message: 'must be a domain name' }))
      .default([])
      .describe('Recipient domains of the provider.'),
    mx: z
      .array(z.string().refine((d) => normalizeDomain(d) !== null, { message: 'must be a host-name suffix' }))
      .default([])
      .describe('MX host suffixes of the provider ("google.com": every domain hosted at Google).'),
    daily: z
      .array(z.number().int().positive())
      .min(1)
      .describe(
        'Most recipients per UTC day sent to the provider from this source: day 1, day 2, …; after the last day, no cap.',
      ),
  })
  .describe('A provider with no domains and no mx is every destination no other entry names.');

/** A named source of outbound connections: the local address bound and the EHLO name said. */
export const egressSchema = z
  .strictObject({
    name: z
      .string()
      .regex(NAME, 'letters, digits and . _ - only')
      .describe('How accounts and pools name it.'),
    local_address: z
      .string()
      .refine((a) => isIP(a) !== 0, { message: 'must be an IP address of this machine' })
      .describe('The address outbound connections are made from.'),
    ehlo: z
      .string()
      .refine(isHostName, { message: 'must be a host name' })
      .optional()
      .describe("The EHLO name on this source's connections (default: hostname); its PTR should match."),
    warmup_start: z
      .string()
      .regex(DAY, 'expected a date like "2026-12-01"')
      .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), { message: 'not a date' })
      .optional()
      .describe('Day 1 of the warm-up schedule (UTC); required with warmup.'),
    warmup: z
      .array(warmupSchema)
      .default([])
      .describe('Daily caps per destination provider while the source is new.'),
  })
  .superRefine((e, ctx) => {
    if (e.warmup.length > 0 && e.warmup_start === undefined)
      ctx.addIssue({ code: 'custom', path: ['warmup_start'], message: 'required when warmup is set' });
    const catchAll = e.warmup.filter((w) => w.domains.length === 0 && w.mx.length === 0);
    if (catchAll.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: ['warmup'],
        message:
          'at most one provider may leave out both domains and mx (the one for every other destination)',
      });
    const names = e.warmup.map((w) => w.provider);
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined)
      ctx.addIssue({ code: 'custom', path: ['warmup'], message: `provider "${twice}" is listed twice` });
  });

export type EgressConfig = z.infer<typeof egressSchema>;
