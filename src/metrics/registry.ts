import {
  AggregatorRegistry,
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type MetricObjectWithValues,
  type MetricValue,
} from 'prom-client';

/** Queue depth per destination, read from the spool at scrape time. */
export interface QueueDepth {
  readonly domain: string;
  readonly recipients: number;
  readonly oldestSeconds: number;
}

/** An account's count against its daily quota, read at scrape time. */
export interface AccountQuotaUsage {
  readonly account: string;
  readonly used: number;
  readonly quota: number;
}

/** Petrel's metrics on a registry of its own (never prom-client's global one). */
export interface Metrics {
  readonly registry: Registry;
  readonly messagesReceived: Counter<'listener'>;
  readonly recipientOutcomes: Counter<'outcome'>;
  readonly submissionSeconds: Histogram;
  readonly deliveryAttemptSeconds: Histogram;
  readonly bounces: Counter<'category' | 'reason'>;
  readonly shapingDecisions: Counter<'rule' | 'action'>;
  readonly accountPauses: Counter<'account' | 'reason'>;
  readonly privacyErasures: Counter;
  readonly unsubscribes: Counter<'source'>;
  readonly retentionDeleted: Counter<'kind'>;
  /** Recipients (or transactions, at MAIL FROM) an account's limit refused, by account and reason (rate, daily). */
  readonly accountLimitRefusals: Counter<'account' | 'reason'>;
  /** Where the daily quota gauges read from at scrape time (the submission listeners, once they run). */
  readAccountUsage(read: () => Promise<readonly AccountQuotaUsage[]>): void;
  /** Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }>;
  /** The metrics as data, for a node's primary to sum over its workers (aggregateMetrics). */
  snapshot(): Promise<unknown>;
}

/**
 * The node's exposition from every worker's snapshot: counters and histograms summed, the
 * gauges every worker reads from the same database taken once (their `aggregator`).
 */
export async function aggregateMetrics(
  snapshots: readonly unknown[],
): Promise<{ contentType: string; body: string }> {
  const registry = AggregatorRegistry.aggregate(snapshots as MetricObjectWithValues<MetricValue<string>>[][]);
  return { contentType: registry.contentType, body: await registry.metrics() };
}

export interface MetricsOptions {
  /** Called at scrape time for the queue gauges. */
  readonly queueDepth: () => Promise<readonly QueueDepth[]>;
  /** Called at scrape time: bytes of the spool files. */
  readonly spoolBytes: () => number;
  /** Called at scrape time: 1 while the limits shared through Redis are kept per node instead. */
  readonly shapingDegraded?: () => boolean;
  /** Domains beyond this many (by depth) are summed under `other`, so label cardinality stays bounded. */
  readonly topDomains?: number;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  // Standard names (process_cpu_seconds_total, …): the ones dashboards and alerts look for.
  collectDefaultMetrics({ register: registry });
  // prom-client names three gauges with a _total suffix, which promtool (and OpenMetrics) keep for
  // counters; the same totals are sum() over the per-type gauges it also exports.
  for (const what of ['handles', 'requests', 'resources'])
    registry.removeSingleMetric(`nodejs_active_${what}_total`);
  const top = options.topDomains ?? 20;

  const messagesReceived = new Counter({
    name: 'petrel_messages_received_total',
    help: 'Messages accepted (250) by listener.',
    labelNames: ['listener'] as const,
    registers: [registry],
  });
  const recipientOutcomes = new Counter({
    name: 'petrel_recipient_outcomes_total',
    help: 'Recipient state transitions by outcome.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of ['delivered', 'deferred', 'bounced', 'expired', 'suppressed', 'cancelled'])
    recipientOutcomes.inc({ outcome }, 0);
  const submissionSeconds = new Histogram({
    name: 'petrel_submission_seconds',
    help: 'Time from the end of DATA to the 250 reply (parse, sign, durable commit).',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const deliveryAttemptSeconds = new Histogram({
    name: 'petrel_delivery_attempt_seconds',
    help: 'Duration of one delivery attempt (one message over an open session).',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const bounces = new Counter({
    name: 'petrel_bounces_total',
    help: 'Bounces and complaints acted on, by category and reason.',
    labelNames: ['category', 'reason'] as const,
    registers: [registry],
  });
  const shapingDecisions = new Counter({
    name: 'petrel_shaping_decisions_total',
    help: 'Destinations suspended or throttled by a shaping rule, by rule and action.',
    labelNames: ['rule', 'action'] as const,
    registers: [registry],
  });
  const accountPauses = new Counter({
    name: 'petrel_account_pauses_total',
    help: 'Accounts whose marketing mail the guard paused, by account and reason (complaint_rate, hard_bounce_rate).',
    labelNames: ['account', 'reason'] as const,
    registers: [registry],
  });
  const privacyErasures = new Counter({
    name: 'petrel_privacy_erasures_total',
    help: 'Completed privacy erasures.',
    // Every worker counts the same erasures (they run in the CLI and are read from the database).
    aggregator: 'max',
    registers: [registry],
  });
  const unsubscribes = new Counter({
    name: 'petrel_unsubscribes_total',
    help: 'Unsubscribes by source (one-click, mailto).',
    labelNames: ['source'] as const,
    registers: [registry],
  });
  const retentionDeleted = new Counter({
    name: 'petrel_retention_deleted_total',
    help: 'Rows and bodies removed by the retention sweep, by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const accountLimitRefusals = new Counter({
    name: 'petrel_account_limit_refusals_total',
    help: 'MAIL FROM and RCPT TO refused with 451 4.7.1 by an account limit, by account and reason (rate, daily).',
    labelNames: ['account', 'reason'] as const,
    registers: [registry],
  });
  let accountUsage: (() => Promise<readonly AccountQuotaUsage[]>) | null = null;
  // Every worker reads the one count its node (or cluster) shares: taken once, not summed.
  const dailyUsed = new Gauge({
    name: 'petrel_account_daily_recipients',
    help: 'Recipients accepted today (UTC) by each account with a daily quota.',
    labelNames: ['account'] as const,
    aggregator: 'first',
    registers: [registry],
  });
  const dailyQuota = new Gauge({
    name: 'petrel_account_daily_quota',
    help: 'Daily quota (recipients per UTC day) of each account that has one.',
    labelNames: ['account'] as const,
    aggregator: 'first',
    registers: [registry],
  });
  const refreshAccounts = async (): Promise<void> => {
    if (!accountUsage) return;
    const usage = await accountUsage();
    dailyUsed.reset();
    dailyQuota.reset();
    for (const u of usage) {
      dailyUsed.set({ account: u.account }, u.used);
      dailyQuota.set({ account: u.account }, u.quota);
    }
  };
  new Gauge({
    name: 'petrel_spool_bytes',
    help: 'Size of the spool database files.',
    aggregator: 'first',
    registers: [registry],
    collect() {
      this.set(options.spoolBytes());
    },
  });

  if (options.shapingDegraded) {
    const degraded = options.shapingDegraded;
    new Gauge({
      name: 'petrel_shaping_degraded',
      help: 'Whether Redis is unreachable, so that shared limits are kept per node (divided by the nodes seen last).',
      aggregator: 'max',
      registers: [registry],
      collect() {
        this.set(degraded() ? 1 : 0);
      },
    });
  }

  let depth: readonly QueueDepth[] = [];
  const queueRecipients = new Gauge({
    name: 'petrel_queue_recipients',
    help: 'Recipients waiting or in flight, by destination domain (top domains, the rest as other).',
    labelNames: ['domain'] as const,
    aggregator: 'first',
    registers: [registry],
  });
  const queueOldest = new Gauge({
    name: 'petrel_queue_oldest_seconds',
    help: 'Age of the oldest waiting message, by destination domain (top domains, the rest as other).',
    labelNames: ['domain'] as const,
    aggregator: 'first',
    registers: [registry],
  });

  const refreshQueue = async (): Promise<void> => {
    depth = await options.queueDepth();
    queueRecipients.reset();
    queueOldest.reset();
    const sorted = [...depth].sort((a, b) => b.recipients - a.recipients);
    let otherCount = 0;
    let otherOldest = 0;
    sorted.forEach((d, i) => {
      if (i < top) {
        queueRecipients.set({ domain: d.domain }, d.recipients);
        queueOldest.set({ domain: d.domain }, d.oldestSeconds);
      } else {
        otherCount += d.recipients;
        otherOldest = Math.max(otherOldest, d.oldestSeconds);
      }
    });
    if (sorted.length > top) {
      queueRecipients.set({ domain: 'other' }, otherCount);
      queueOldest.set({ domain: 'other' }, otherOldest);
    }
  };

  return {
    registry,
    messagesReceived,
    recipientOutcomes,
    submissionSeconds,
    deliveryAttemptSeconds,
    bounces,
    shapingDecisions,
    accountPauses,
    privacyErasures,
    unsubscribes,
    retentionDeleted,
    accountLimitRefusals,
    readAccountUsage(read) {
      accountUsage = read;
    },
    async render() {
      await Promise.all([refreshQueue(), refreshAccounts()]);
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
    async snapshot() {
      await Promise.all([refreshQueue(), refreshAccounts()]);
      return registry.getMetricsAsJSON();
    },
  };
}
