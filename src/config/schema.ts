import { hostname as osHostname } from 'node:os';
import { z } from 'zod';
import { parseCidr, parseDuration, parseListen, parseSize, type Cidr, type ListenAddress } from './units.js';

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
  max_connections: z.number().int().positive().optional(),
  messages_per_connection: z.number().int().positive().optional(),
  rate: rate.optional(),
  retry: z.array(duration).min(1).optional(),
  max_age: duration.optional(),
  tls: z.enum(['may', 'encrypt', 'verify']).optional(),
};

const submission = z.strictObject({
  /** STARTTLS listeners (587); AUTH is offered only after TLS. */
  listen: z.array(listen).prefault(['127.0.0.1:2587']),
  /** Implicit-TLS listeners (465). */
  tls_listen: z.array(listen).prefault([]),
  /** Largest message accepted, advertised with SIZE. */
  max_message_size: size.prefault('25MB'),
  /** Recipients per message; RFC 5321 requires at least 100. */
  max_recipients: z.number().int().min(1).default(100),
  /** Longest line in a message, in bytes without CRLF (RFC 5322: 998). */
  max_line_length: z.number().int().min(78).default(998),
  /** Largest header block. */
  max_header_size: size.prefault('1MB'),
  /** More Received headers than this means a mail loop: 554 5.4.6. */
  max_received_headers: z.number().int().min(1).default(100),
  /** Clients in these networks may submit without AUTH or TLS, as trusted_account. */
  trusted_networks: z.array(cidr).prefault([]),
  /** The account whose sender domains bind trusted-network clients. */
  trusted_account: z.string().default(''),
  /** Concurrent connections over all clients. */
  max_connections: z.number().int().positive().default(1000),
  /** Concurrent connections from one IP address. */
  max_connections_per_ip: z.number().int().positive().default(50),
  /** A connection idle this long is closed. */
  idle_timeout: duration.prefault('5m'),
  /** DATA must finish within this time, however slowly the bytes drip. */
  data_timeout: duration.prefault('10m'),
  /** AUTH failures from one IP within auth_failure_window before it is refused. */
  auth_max_failures: z.number().int().positive().default(10),
  auth_failure_window: duration.prefault('15m'),
  /** Look up clients' reverse DNS for the Received header (slow where DNS is slow). */
  reverse_lookup: z.boolean().default(false),
  /** How long open sessions may finish after shutdown starts before they get 421. */
  close_timeout: duration.prefault('10s'),
  /** Pause 100 ms before the banner to catch early talkers (a port-25 defence; it costs submission throughput). */
  greeting_delay: z.boolean().default(false),
});

export const configSchema = z.strictObject({
  /** Name used in EHLO, the banner and Received headers. */
  hostname: z.string().min(1).default(osHostname()),
  /** SQLite spool, generated certificate and keys. */
  data_dir: z.string().min(1).default('./var'),
  /** Empty: logs go to stdout only. */
  log_dir: z.string().default(''),
  /** With log_dir: the current file rolls over to a new one at this size. */
  log_max_size: size.prefault('50MB'),
  /** With log_dir: rolled-over files kept besides the current one; older ones are deleted. */
  log_max_files: z.number().int().min(1).default(10),
  log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  submission: submission.prefault({}),
  tls: z
    .strictObject({
      /** PEM certificate chain; empty: a self-signed one made in data_dir. */
      cert: z.string().default(''),
      /** PEM private key. */
      key: z.string().default(''),
    })
    .prefault({}),
  inbound: z
    .strictObject({
      listen: z.array(listen).prefault(['127.0.0.1:2525']),
      /** VERP return paths live here; its MX must point at this listener. */
      bounce_domain: z.string().default('bounces.localhost'),
      /** Where feedback-loop (ARF) reports are sent. */
      fbl_address: z.string().default('fbl@bounces.localhost'),
      /** Largest report accepted. */
      max_message_size: size.prefault('10MB'),
      max_connections_per_ip: z.number().int().positive().default(20),
      /** Return paths older than this are refused (a replayed old bounce changes nothing). */
      verp_max_age: duration.prefault('30d'),
    })
    .prefault({}),
  http: z
    .strictObject({
      listen: listen.prefault('127.0.0.1:8025'),
      public_url: z.url().default('http://127.0.0.1:8025'),
      /** How long a List-Unsubscribe link stays valid. */
      unsubscribe_ttl: duration.prefault('180d'),
      /** Bearer token required for /metrics; empty: none (keep the listener on loopback then). */
      metrics_token: z.string().default(''),
    })
    .prefault({}),
  suppression: z
    .strictObject({
      /** Soft bounces within soft_bounce_window that suppress an address. */
      soft_bounce_limit: z.number().int().positive().default(3),
      soft_bounce_window: duration.prefault('7d'),
    })
    .prefault({}),
  retention: z
    .strictObject({
      /** Bodies of finished messages (every recipient delivered, bounced, …) are dropped after this. */
      bodies: duration.prefault('7d'),
      /** Events, bounce records and finished messages' metadata are deleted after this. */
      records: duration.prefault('90d'),
      /** How often the sweep runs. */
      interval: duration.prefault('1h'),
    })
    .prefault({}),
  dkim: z
    .strictObject({
      /** Refuse (550 5.7.1) mail whose From: domain has no key, instead of sending it unsigned. */
      require: z.boolean().default(false),
      /** Also sign every message with this domain's key (the platform's own domain). */
      also_sign_as: z.string().default(''),
    })
    .prefault({}),
  dns: z.strictObject({ servers: z.array(z.string()).default([]) }).prefault({}),
  /** Receivers of delivery events (`[[webhooks]]`): signed JSON batches, retried until acknowledged. */
  webhooks: z
    .array(
      z.strictObject({
        /** Where batches are POSTed; a 2xx acknowledges a batch. */
        url: z.url({ protocol: /^https?$/ }),
        /** File holding the HMAC-SHA256 secret (16 characters or more) that signs each body. */
        secret_file: z.string().min(1),
        /** Most events in one POST. */
        batch_size: z.number().int().min(1).max(1000).default(100),
        /** Event types to send; default: all of them. */
        events: z
          .array(z.enum(['delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'suppressed']))
          .min(1)
          .default(['delivered', 'deferred', 'bounced', 'complained', 'unsubscribed', 'suppressed']),
        /** A POST not answered within this time failed. */
        timeout: duration.prefault('10s'),
        /** Longest wait between retries; they back off exponentially from 1s. */
        max_backoff: duration.prefault('5m'),
        /** How often to look for new events. */
        poll_interval: duration.prefault('1s'),
      }),
    )
    .refine((list) => new Set(list.map((w) => w.url)).size === list.length, { message: 'each webhook url may appear once' })
    .default([]),
  delivery: z
    .strictObject({
      default: z.strictObject(shaping).prefault({}),
      /** TCP port of MX hosts; only test and lab setups change it. */
      mx_port: z.number().int().min(1).max(65535).default(25),
      /** On shutdown, how long deliveries in flight may finish before they are aborted. */
      drain_timeout: duration.prefault('10s'),
      /** How often the queue looks for due work when nothing wakes it. */
      poll_interval: duration.prefault('1s'),
      domain: z.record(z.string(), z.strictObject(shaping)).default({}),
      mx: z.record(z.string(), z.strictObject(shaping)).default({}),
    })
    .prefault({}),
  routes: z
    .record(
      z.string(),
      z.strictObject({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(25),
        /** AUTH user at the smarthost; empty: no AUTH. */
        auth_user: z.string().default(''),
        /** File holding the AUTH password (secrets never sit in the config itself). */
        auth_password_file: z.string().default(''),
      }),
    )
    .default({}),
});

/** The whole validated configuration; durations in ms, sizes in bytes. */
export type Config = z.infer<typeof configSchema>;
export type SubmissionConfig = Config['submission'];
export type TlsConfig = Config['tls'];
