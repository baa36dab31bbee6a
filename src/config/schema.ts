import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';
import { z } from 'zod';
import { normalizeDomain, parseAddress, pseudoFilesystem } from '../shared/index.js';
import { egressSchema } from './egress-schema.js';
import {
  isHostName,
  parseCidr,
  parseDuration,
  parseListen,
  parseSize,
  type Cidr,
  type ListenAddress,
} from './units.js';

const duration = z.string().transform((text, ctx): number => {
  const ms = parseDuration(text);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (like "90s", "10m", "3d")` });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.number().int().nonnegative(), z.string()]).transform((value, ctx): number => {
  const bytes = typeof value === 'number' ? value : parseSize(value);
  if (bytes === null) {
    ctx.addIssue({ code: 'custom', message: `"${String(value)}" is not a size (like "25MB", "512KB")` });
    return z.NEVER;
  }
  return bytes;
});

// Zero of these means "never" or "at once" where Petrel needs "after a while": mail would quietly
// stop (every message 552, every link expired) or a loop would spin.
const positiveDuration = duration.refine((ms) => ms > 0, { message: 'must be more than 0' });
const positiveSize = size.refine((bytes) => bytes > 0, { message: 'must be more than 0' });

/** A duration, or "" for "never": null. */
const durationOrOff = z.string().transform((text, ctx): number | null => {
  if (text === '') return null;
  const ms = parseDuration(text);
  if (ms === null || ms <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (like "4h") or "" (off)` });
    return z.NEVER;
  }
  return ms;
});

/** A directory Petrel creates and writes; /proc and /sys refuse files, and Node's mkdir spins on /proc. */
const directory = z.string().refine((path) => pseudoFilesystem(path) === null, {
  message: 'must not lie under /proc or /sys',
});

const domainName = z.string().refine((text) => normalizeDomain(text) !== null, {
  message: 'must be a domain name like "bounces.example.com"',
});

const listen = z.string().transform((text, ctx): ListenAddress => {
  const parsed = parseListen(text);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not host:port with a port from 0 to 65535` });
    return z.NEVER;
  }
  return parsed;
});

const cidr = z.string().transform((text, ctx): Cidr => {
  const parsed = parseCidr(text);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not an IP address or CIDR block` });
    return z.NEVER;
  }
  return parsed;
});

const rate = z.string().refine((s) => s === 'unlimited' || /^\d+\/(s|sec|m|min|h|hour)$/.test(s), {
  message: 'expected "unlimited" or a rate like "600/min", "20/s", "1000/h"',
});

const shaping = {
  max_connections: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Concurrent connections to the destination (default 10).'),
  messages_per_connection: z
    .number()
    .int()
    .positive()
    .optional()
    .describe('Messages sent over one connection before it is closed (default 100).'),
  rate: rate.optional().describe('Most messages per time, "unlimited" (default) or like "600/min", "20/s".'),
  retry: z
    .array(positiveDuration)
    .min(1)
    .optional()
    .describe(
      'Delays after the 1st, 2nd, … failed attempt; the last repeats (default ["1m", "5m", "15m", "1h", "4h"]).',
    ),
  max_age: positiveDuration
    .optional()
    .describe('A recipient not delivered after this expires with a DSN (default "3d").'),
  tls: z
    .enum(['may', 'encrypt', 'verify'])
    .optional()
    .describe(
      'may: STARTTLS when offered (default); encrypt: TLS required; verify: TLS with a valid certificate.',
    ),
  egress: z
    .string()
    .optional()
    .describe(
      "The [[egress]] source mail goes out from (default: the machine picks); an account's own egress comes first.",
    ),
};

/**
 * One shaping rule: a reply from a destination and what to do about it. Shared by the shipped
 * rules file and `[[shaping.rule]]`, which the operator's rules come first in.
 */
export const shapingRuleSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/, { message: 'lowercase letters, digits and dashes' })
      .describe('Unique name, shown in events and `petrel shaping status`.'),
    source: z.string().optional().describe('Where the rule comes from (the provider page it follows).'),
    mx: z.array(z.string().min(1)).default([]).describe('MX host suffixes the rule applies to (any).'),
    domains: z.array(z.string().min(1)).default([]).describe('Recipient domains the rule applies to (any).'),
    code: z.array(z.number().int().min(200).max(599)).default([]).describe('Reply codes it matches (any).'),
    enhanced: z
      .array(
        z
          .string()
          .regex(/^[245]\.\d{1,3}\.(\d{1,3})?$/, { message: 'like "4.7.28", or "4.7." for a prefix' }),
      )
      .default([])
      .describe('Enhanced status codes it matches (any); "4.7." is a prefix.'),
    text: z
      .string()
      .optional()
      .superRefine((t, ctx) => {
        if (t === undefined) return;
        try {
          new RegExp(t, 'i');
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: `not a regular expression: ${(err as Error).message}` });
        }
      })
      .describe('A regular expression (case-insensitive) on the reply text.'),
    action: z
      .enum(['suspend', 'throttle', 'bounce'])
      .describe(
        'suspend: send nothing for `duration`; throttle: cut the limits; bounce: end the recipient now.',
      ),
    duration: positiveDuration.optional().describe('How long a suspension or throttle lasts.'),
    connections_factor: z.number().gt(0).lte(1).optional().describe('Throttle: max_connections × this.'),
    rate_factor: z.number().gt(0).lte(1).optional().describe('Throttle: rate × this.'),
    rate: rate.optional().describe('Throttle: a rate cap meanwhile ("60/min").'),
    ramp: positiveDuration
      .optional()
      .describe('After the action, limits double every this long back to normal ([shaping] ramp).'),
  })
  .superRefine((r, ctx) => {
    const issue = (message: string): void =>
      void ctx.addIssue({ code: 'custom', message: `rule ${r.name}: ${message}` });
    if (r.mx.length === 0 && r.domains.length === 0) issue('needs mx or domains');
    if (r.code.length === 0 && r.enhanced.length === 0 && r.text === undefined)
      issue('needs code, enhanced or text');
    if (r.action !== 'bounce' && r.duration === undefined) issue(`${r.action} needs a duration`);
    if (
      r.action === 'throttle' &&
      r.connections_factor === undefined &&
      r.rate_factor === undefined &&
      r.rate === undefined
    )
      issue('throttle needs connections_factor, rate_factor or rate');
  });

export type ShapingRuleConfig = z.infer<typeof shapingRuleSchema>;

const submission = z
  .strictObject({
    listen: z
      .array(listen)
      .prefault(['127.0.0.1:2587'])
      .describe('STARTTLS listeners (587); AUTH is offered only after TLS.'),
    tls_listen: z.array(listen).prefault([]).describe('Implicit-TLS listeners (465).'),
    max_message_size: positiveSize
      .prefault('25MB')
      .describe('Largest message accepted, advertised with SIZE.'),
    max_recipients: z
      .number()
      .int()
      .min(100, { message: 'must be at least 100 (RFC 5321 section 4.5.3.1.8)' })
      .default(100)
      .describe('Recipients per message; RFC 5321 requires at least 100.'),
    max_line_length: z
      .number()
      .int()
      .min(78)
      .default(998)
      .describe('Longest line in a message, in bytes without CRLF (RFC 5322: 998).'),
    max_header_size: positiveSize.prefault('1MB').describe('Largest header block.'),
    max_received_headers: z
      .number()
      .int()
      .min(1)
      .default(100)
      .describe('More Received headers than this means a mail loop: 554 5.4.6.'),
    trusted_networks: z
      .array(cidr)
      .prefault([])
      .describe('Clients in these networks may submit without AUTH or TLS, as trusted_account.'),
    trusted_account: z
      .string()
      .default('')
      .describe(
        'The account whose sender domains bind trusted-network clients (required with trusted_networks).',
      ),
    max_connections: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('Concurrent connections over all clients.'),
    max_connections_per_ip: z
      .number()
      .int()
      .positive()
      .default(50)
      .describe('Concurrent connections from one IP address.'),
    idle_timeout: positiveDuration.prefault('5m').describe('A connection idle this long is closed.'),
    data_timeout: positiveDuration
      .prefault('10m')
      .describe('DATA must finish within this time, however slowly the bytes drip.'),
    auth_max_failures: z
      .number()
      .int()
      .positive()
      .default(10)
      .describe('AUTH failures from one IP within auth_failure_window before it is refused.'),
    auth_failure_window: positiveDuration
      .prefault('15m')
      .describe('The window over which AUTH failures are counted.'),
    reverse_lookup: z
      .boolean()
      .default(false)
      .describe("Look up clients' reverse DNS for the Received header (slow where DNS is slow)."),
    close_timeout: duration
      .prefault('10s')
      .describe('How long open sessions may finish after shutdown starts before they get 421.'),
    greeting_delay: z
      .boolean()
      .default(false)
      .describe(
        'Pause 100 ms before the banner to catch early talkers (a port-25 defence; it costs submission throughput).',
      ),
  })
  .refine((s) => s.trusted_networks.length === 0 || s.trusted_account !== '', {
    // Without it, trusted clients get 530 for every message.
    path: ['trusted_account'],
    message: 'required when trusted_networks is set (the account their mail is sent as)',
  });

const configFields = z.strictObject({
  hostname: z
    .string()
    .refine(isHostName, { message: 'must be a host name like "mta.example.com"' })
    .default(osHostname())
    .describe('Name used in EHLO, the banner and Received headers.'),
  data_dir: directory
    .refine((path) => path !== '', { message: 'must not be empty' })
    .default('./var')
    .describe('SQLite spool, generated certificate and keys.'),
  log_dir: directory.default('').describe('Empty: logs go to stdout only.'),
  log_max_size: positiveSize
    .prefault('50MB')
    .describe('With log_dir: the current file rolls over to a new one at this size.'),
  log_max_files: z
    .number()
    .int()
    .min(1)
    .default(10)
    .describe('With log_dir: rolled-over files kept besides the current one; older ones are deleted.'),
  log_level: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace'])
    .default('info')
    .describe('Least severe level logged.'),
  server: z
    .strictObject({
      workers: z
        .union([z.literal('auto'), z.number().int().min(1).max(512)])
        .default('auto')
        .describe(
          'Worker processes that accept, sign, spool and deliver; "auto": one per core, 1: a single process. Restart only.',
        ),
    })
    .prefault({}),
  cluster: z
    .strictObject({
      node: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
          message: 'must be letters, digits, ".", "_" or "-" (up to 63), like "mta-1"',
        })
        .default(
          osHostname()
            .replace(/[^A-Za-z0-9._-]/g, '-')
            .slice(0, 63) || 'petrel',
        )
        .describe(
          "This node's name among the nodes of one PostgreSQL spool; unique per node (leases and heartbeats carry it).",
        ),
      node_timeout: positiveDuration
        .prefault('30s')
        .describe('A node whose heartbeat is older than this has its leases taken over by the others.'),
      redis: z
        .string()
        .default('')
        .refine((url) => url === '' || /^rediss?:\/\/[^\s]+$/.test(url), {
          message: 'must be empty or a URL like "redis://redis.example.com:6379"',
        })
        .describe(
          'Redis for limits shared by every node (connections, rate, per-address counters); empty: limits per node.',
        ),
    })
    .prefault({}),
  submission: submission.prefault({}),
  spool: z
    .strictObject({
      url: z
        .string()
        .default('')
        .refine((url) => url === '' || /^postgres(ql)?:\/\/[^\s]+$/.test(url), {
          message:
            'must be empty (SQLite in data_dir) or a URL like "postgres://petrel@db.example.com/petrel"',
        })
        .describe(
          'Empty: the SQLite spool in data_dir. A postgres:// URL: one PostgreSQL spool shared by every node (a password from PGPASSWORD or ~/.pgpass). Restart only.',
        ),
      erase_rewrite: z
        .boolean()
        .default(false)
        .describe(
          'PostgreSQL: after an erasure, rewrite the tables it touched (VACUUM FULL), so that no byte of the address stays in their free space; each table is locked while it is rewritten.',
        ),
      key_file: z
        .string()
        .default('')
        .describe(
          'File with the 32-byte key (base64) that seals DKIM private keys kept in a PostgreSQL spool; PETREL_SPOOL_KEY overrides it. Every node needs the same key.',
        ),
    })
    .prefault({}),
  tls: z
    .strictObject({
      cert: z
        .string()
        .default('')
        .describe('PEM certificate chain; empty: a self-signed one made in data_dir.'),
      key: z.string().default('').describe('PEM private key.'),
    })
    .prefault({}),
  inbound: z
    .strictObject({
      listen: z
        .array(listen)
        .prefault(['127.0.0.1:2525'])
        .describe('Listeners for bounces, feedback reports and unsubscribe mail (port 25 in production).'),
      bounce_domain: domainName
        .default('bounces.localhost')
        .describe('VERP return paths live here; its MX must point at this listener.'),
      fbl_address: z
        .string()
        .refine((text) => parseAddress(text) !== null, {
          message: 'must be an address like "fbl@bounces.example.com"',
        })
        .default('fbl@bounces.localhost')
        .describe('Where feedback-loop (ARF) reports are sent.'),
      max_message_size: positiveSize
        .prefault('4MB')
        .describe('Largest report accepted (reports are small; the public port keeps each message cheap).'),
      max_connections: z
        .number()
        .int()
        .positive()
        .default(200)
        .describe('Concurrent connections over all clients.'),
      max_connections_per_ip: z
        .number()
        .int()
        .positive()
        .default(20)
        .describe('Concurrent connections from one IP address.'),
      idle_timeout: positiveDuration.prefault('1m').describe('A connection idle this long is closed.'),
      data_timeout: positiveDuration
        .prefault('5m')
        .describe('DATA must finish within this time, however slowly the bytes drip.'),
      greeting_pause: duration
        .prefault('300ms')
        .describe(
          'Wait before the banner; a client that sends anything sooner gets 421 and is closed ("0s": greet at once, no check).',
        ),
      verp_max_age: positiveDuration
        .prefault('30d')
        .describe('Return paths older than this are refused (a replayed old bounce changes nothing).'),
    })
    .prefault({}),
  http: z
    .strictObject({
      listen: listen
        .prefault('127.0.0.1:8025')
        .describe('Listener for the HTTP API (/api/v1), /metrics, /healthz, /readyz and unsubscribe links.'),
      public_url: z
        .url()
        .default('http://127.0.0.1:8025')
        .describe('Base of List-Unsubscribe URLs, as recipients reach it.'),
      unsubscribe_ttl: positiveDuration
        .prefault('180d')
        .describe('How long a List-Unsubscribe link stays valid.'),
      metrics_token_file: z
        .string()
        .default('')
        .describe(
          'File holding the bearer token /metrics requires (16 characters or more); empty: none (keep the listener on loopback then).',
        ),
    })
    .prefault({}),
  suppression: z
    .strictObject({
      soft_bounce_limit: z
        .number()
        .int()
        .positive()
        .default(3)
        .describe('Soft bounces within soft_bounce_window that suppress an address.'),
      soft_bounce_window: positiveDuration
        .prefault('7d')
        .describe('The window over which soft bounces are counted.'),
    })
    .prefault({}),
  retention: z
    .strictObject({
      bodies: duration
        .prefault('7d')
        .describe(
          'Bodies of finished messages (every recipient delivered, bounced, …) are dropped after this.',
        ),
      records: positiveDuration
        .prefault('90d')
        .describe("Events, bounce records and finished messages' metadata are deleted after this."),
      interval: positiveDuration.prefault('1h').describe('How often the sweep runs.'),
    })
    .prefault({}),
  dkim: z
    .strictObject({
      require: z
        .boolean()
        .default(false)
        .describe('Refuse (550 5.7.1) mail whose From: domain has no key, instead of sending it unsigned.'),
      also_sign_as: z
        .string()
        .refine((text) => text === '' || normalizeDomain(text) !== null, {
          message: 'must be empty or a domain name',
        })
        .default('')
        .describe("Also sign every message with this domain's key (the platform's own domain)."),
    })
    .prefault({}),
  dns: z
    .strictObject({
      servers: z
        .array(
          z
            .string()
            .refine(isResolverAddress, { message: 'must be an IP address, "ip:port" or "[ipv6]:port"' }),
        )
        .default([])
        .describe('Resolvers as "ip" or "ip:port"; empty: the system\'s.'),
    })
    .prefault({}),
  webhooks: z
    .array(
      z.strictObject({
        url: z
          .url({ protocol: /^https?$/ })
          .describe('Where batches are POSTed; a 2xx acknowledges a batch.'),
        secret_file: z
          .string()
          .min(1)
          .describe('File holding the HMAC-SHA256 secret (16 characters or more) that signs each body.'),
        batch_size: z.number().int().min(1).max(1000).default(100).describe('Most events in one POST.'),
        events: z
          .array(z.enum(['delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'suppressed']))
          .min(1)
          .default(['delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'suppressed'])
          .describe('Event types to send.'),
        timeout: positiveDuration.prefault('10s').describe('A POST not answered within this time failed.'),
        max_backoff: positiveDuration
          .prefault('5m')
          .describe('Longest wait between retries; they back off exponentially from 1s.'),
        poll_interval: positiveDuration.prefault('1s').describe('How often to look for new events.'),
      }),
    )
    .refine((list) => new Set(list.map((w) => w.url)).size === list.length, {
      message: 'each webhook url may appear once',
    })
    .default([])
    .describe('Receivers of delivery events: signed JSON batches, retried until acknowledged.'),
  guard: z
    .strictObject({
      complaint_rate: z
        .number()
        .min(0)
        .max(1)
        .default(0.003)
        .describe(
          "Complaints per delivery that pause an account's marketing mail (0.003 = 0.3%, Gmail's line; 0: never).",
        ),
      hard_bounce_rate: z
        .number()
        .min(0)
        .max(1)
        .default(0.05)
        .describe('Hard bounces per delivery that pause it likewise (0: never).'),
      window: z
        .number()
        .int()
        .positive()
        .default(1000)
        .describe('The rates count over the last this many deliveries of the account …'),
      window_time: positiveDuration.prefault('24h').describe('… within this long.'),
      min_deliveries: z
        .number()
        .int()
        .positive()
        .default(100)
        .describe('Fewer deliveries than this in the window never pause (too few to judge).'),
      interval: positiveDuration.prefault('1m').describe('How often the rates are checked.'),
    })
    .prefault({})
    .describe(
      "The complaint- and bounce-rate guard: pauses an account's marketing mail, transactional mail flows.",
    ),
  shaping: z
    .strictObject({
      rules_file: z
        .string()
        .optional()
        .describe(
          'Built-in rules for the big providers (default: config/shaping-rules.toml shipped with Petrel; "" for none).',
        ),
      ramp: positiveDuration
        .prefault('10m')
        .describe("After a rule's action, limits double every this long until they are back to normal."),
      rule: z
        .array(shapingRuleSchema)
        .default([])
        .describe('Rules of your own, tried before the built-in ones.'),
    })
    .prefault({})
    .describe('Reactions to what receivers answer: suspend, throttle and ramp back, or bounce.'),
  delivery: z
    .strictObject({
      default: z.strictObject(shaping).prefault({}).describe('Shaping for every destination.'),
      mx_port: z
        .number()
        .int()
        .min(1)
        .max(65535)
        .default(25)
        .describe('TCP port of MX hosts; only test and lab setups change it.'),
      drain_timeout: duration
        .prefault('10s')
        .describe('On shutdown, how long deliveries in flight may finish before they are aborted.'),
      poll_interval: positiveDuration
        .prefault('1s')
        .describe('How often the queue looks for due work when nothing wakes it.'),
      lease_time: duration
        .prefault('5m')
        .refine((ms) => ms >= 1000, { message: 'must be at least 1s' })
        .describe(
          'How long a recipient taken for delivery stays taken unless renewed; then it is due again (a stuck attempt or an unrecorded outcome).',
        ),
      delay_warning: durationOrOff
        .prefault('4h')
        .describe(
          'A recipient still deferred this long after its message arrived gets its sender one delay DSN (action=delayed); empty: never.',
        ),
      domain: z
        .record(z.string(), z.strictObject(shaping))
        .default({})
        .describe('Shaping for one destination domain, over the MX rules.'),
      mx: z
        .record(z.string(), z.strictObject(shaping))
        .default({})
        .describe('Shaping for every domain whose MX host ends in this suffix; they share one limit.'),
    })
    .prefault({}),
  egress: z
    .array(egressSchema)
    .default([])
    .describe(
      'Named outbound sources (local address, EHLO name, warm-up), chosen per account or per destination.',
    ),
  routes: z
    .record(
      z.string(),
      z.strictObject({
        host: z
          .string()
          .min(1)
          .describe('Smarthost (IP or name) that mail for this domain goes to, skipping MX lookup.'),
        port: z.number().int().min(1).max(65535).default(25).describe('Its port.'),
        auth_user: z.string().default('').describe('AUTH user at the smarthost; empty: no AUTH.'),
        auth_password_file: z
          .string()
          .default('')
          .describe('File holding the AUTH password (secrets never sit in the config itself).'),
      }),
    )
    .default({})
    .describe('Static routes: mail for a domain goes to a smarthost instead of its MX.'),
});

/** Every source named in [delivery] is one of the [[egress]] tables. */
function checkEgressNames(c: z.infer<typeof configFields>, ctx: z.RefinementCtx): void {
  const names = new Set<string>();
  c.egress.forEach((e, i) => {
    if (names.has(e.name))
      ctx.addIssue({ code: 'custom', path: ['egress', i, 'name'], message: `"${e.name}" is used twice` });
    names.add(e.name);
  });
  const check = (egress: string | undefined, path: (string | number)[]): void => {
    if (egress !== undefined && !names.has(egress))
      ctx.addIssue({ code: 'custom', path, message: `no [[egress]] named "${egress}"` });
  };
  check(c.delivery.default.egress, ['delivery', 'default', 'egress']);
  for (const [d, rule] of Object.entries(c.delivery.domain))
    check(rule.egress, ['delivery', 'domain', d, 'egress']);
  for (const [m, rule] of Object.entries(c.delivery.mx)) check(rule.egress, ['delivery', 'mx', m, 'egress']);
}

export const configSchema = configFields.superRefine(checkEgressNames);

function isResolverAddress(text: string): boolean {
  if (isIP(text) !== 0) return true;
  const parsed = parseListen(text);
  return parsed !== null && parsed.port > 0 && isIP(parsed.host) !== 0;
}

/** The whole validated configuration; durations in ms, sizes in bytes. */
export type Config = z.infer<typeof configSchema>;
export type SubmissionConfig = Config['submission'];
export type TlsConfig = Config['tls'];
