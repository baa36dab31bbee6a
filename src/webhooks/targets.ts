import { readFileSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { ConfigError, errorMessage } from '../shared/index.js';
import type { WebhookTarget } from './dispatcher.js';

/** The configured receivers with their secrets read from their files (a missing or empty file stops start-up). */
export function loadWebhookTargets(webhooks: Config['webhooks']): WebhookTarget[] {
  return webhooks.map((w, i) => {
    let secret: string;
    try {
      secret = readFileSync(w.secret_file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(
        'PETREL_CONFIG_INVALID',
        `webhooks[${i}].secret_file: cannot read: ${errorMessage(err)}`,
      );
    }
    if (secret.length < 16) {
      throw new ConfigError(
        'PETREL_CONFIG_INVALID',
        `webhooks[${i}].secret_file: the secret must be at least 16 characters`,
      );
    }
    return {
      url: w.url,
      secret,
      batchSize: w.batch_size,
      events: w.events,
      timeoutMs: w.timeout,
      maxBackoffMs: w.max_backoff,
      pollIntervalMs: w.poll_interval,
    };
  });
}
