import { Redis } from 'ioredis';
import { errorMessage } from '../shared/index.js';

export interface RedisProbe {
  readonly ok: boolean;
  /** The server's version when it answered; what went wrong otherwise. */
  readonly detail: string;
}

/** Whether the shaping Redis answers now (`petrel doctor`): one PING and INFO, bounded in time. */
export async function probeRedis(url: string, timeoutMs = 2000): Promise<RedisProbe> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.ping();
    const info = await client.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    return { ok: true, detail: `Redis ${version}` };
  } catch (err) {
    return { ok: false, detail: errorMessage(err) };
  } finally {
    client.disconnect();
  }
}
