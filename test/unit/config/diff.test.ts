import { describe, expect, it } from 'vitest';
import { changedSettings, parseConfig } from '../../../src/config/index.js';

describe('changedSettings', () => {
  const base = parseConfig(
    { hostname: 'a.test', delivery: { domain: { 'example.org': { max_connections: 2 } } } },
    'test',
  );

  it('names nothing for equal configurations', () => {
    expect(
      changedSettings(
        base,
        parseConfig(
          { hostname: 'a.test', delivery: { domain: { 'example.org': { max_connections: 2 } } } },
          'test',
        ),
      ),
    ).toEqual([]);
  });

  it('names each changed setting by its full key, lists and listen addresses as a whole', () => {
    const next = parseConfig(
      {
        hostname: 'b.test',
        submission: { listen: ['127.0.0.1:2588'] },
        http: { listen: '127.0.0.1:8026' },
        delivery: { domain: { 'example.org': { max_connections: 3 }, 'example.net': { rate: '20/s' } } },
      },
      'test',
    );
    expect(changedSettings(base, next).sort()).toEqual(
      [
        'delivery.domain."example.net"',
        'delivery.domain."example.org".max_connections',
        'hostname',
        'http.listen',
        'submission.listen',
      ].sort(),
    );
  });
});
