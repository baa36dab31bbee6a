import { Resolver as NodeResolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { errorMessage, normalizeDomain } from '../shared/index.js';
import { localFailure, type FailureOutcome } from './outcome.js';

/** One address to try, in order. Several entries may share a `name` (one per address). */
export interface MxHost {
  /** MX host name (or route host), used for SNI, certificate checks (tls = verify) and logs. */
  readonly name: string;
  /** IP address to connect to; already resolved, so the SMTP client does no DNS of its own. */
  readonly address: string;
  readonly port: number;
  /** MX preference; 0 for static routes and implicit MX. */
  readonly preference: number;
}

/**
 * Where mail for a domain goes: hosts to try in order, or why there is nowhere to go.
 * Permanent failures (`kind: 'failed'`): NXDOMAIN (5.1.2), null MX (RFC 7505, 5.1.10), no MX and
 * no address (5.1.2), no MX host with an address (5.4.4). Everything else that goes wrong
 * (timeout, SERVFAIL, refused, an unresolvable static route host) is transient (4.4.3).
 */
export type Resolution =
  | { readonly ok: true; readonly hosts: readonly MxHost[] }
  | { readonly ok: false; readonly outcome: FailureOutcome };

/**
 * Finds the hosts for a destination domain. Injected into the scheduler; tests use
 * {@link createStaticResolver}, production {@link createMxResolver}. Never rejects.
 */
export interface DestinationResolver {
  resolve(domain: string): Promise<Resolution>;
}

/** The subset of `node:dns/promises` `Resolver` used here, so unit tests can fake DNS answers. */
export interface DnsClient {
  resolveMx(name: string): Promise<{ exchange: string; priority: number }[]>;
  resolve4(name: string): Promise<string[]>;
  resolve6(name: string): Promise<string[]>;
  /** Cancels outstanding queries (called when the lookup deadline passes). */
  cancel(): void;
}

/** A fixed next hop for a domain (config `[routes."example.net"]`). */
export interface StaticRoute {
  readonly host: string;
  readonly port: number;
}

export interface MxResolverOptions {
  /** DNS servers as "ip" or "ip:port" ("[v6]:port"); empty or absent: the system's resolvers. */
  readonly servers?: readonly string[];
  /** Deadline for a whole resolution (MX plus host addresses). Default 15 s. */
  readonly timeoutMs?: number;
  /** Static routes by domain; these skip the MX lookup. */
  readonly routes?: Readonly<Record<string, StaticRoute>>;
  /** Port for MX and implicit-MX hosts. Default 25; tests point it at a sink. */
  readonly port?: number;
  /** Most addresses returned, over all MX hosts. Default 10. */
  readonly maxHosts?: number;
  /** Makes one DNS client per resolution; default: a `node:dns` Resolver on `servers`. */
  readonly dnsFactory?: () => DnsClient;
  /** Shuffles MX hosts of equal preference; injectable for deterministic tests. */
  readonly random?: () => number;
}

const DEFAULT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_HOSTS = 10;

type LookupError = 'nxdomain' | 'nodata' | 'transient';

class LookupFailure extends Error {
  constructor(
    readonly reason: LookupError,
    readonly detail: string,
  ) {
    super(detail);
  }
}

function classifyDnsError(err: unknown): LookupFailure {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOTFOUND') return new LookupFailure('nxdomain', 'NXDOMAIN');
  if (code === 'ENODATA') return new LookupFailure('nodata', 'no records');
  return new LookupFailure('transient', typeof code === 'string' ? code : errorMessage(err));
}

/**
 * The production resolver: static routes first, then MX (preference order, equal preferences
 * shuffled), implicit MX (the domain's own A/AAAA) when there is no MX record, null MX as a
 * permanent failure. Each MX host is resolved here, through the configured servers, IPv4 first.
 */
export function createMxResolver(options: MxResolverOptions = {}): DestinationResolver {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const port = options.port ?? 25;
  const maxHosts = options.maxHosts ?? DEFAULT_MAX_HOSTS;
  const random = options.random ?? Math.random;
  const servers = options.servers ?? [];
  const dnsFactory =
    options.dnsFactory ??
    ((): DnsClient => {
      // c-ares retries within the deadline; one resolver per lookup so cancel() hits only it.
      const resolver = new NodeResolver({ timeout: Math.max(100, Math.floor(timeoutMs / 3)), tries: 2 });
      if (servers.length > 0) resolver.setServers([...servers]);
      return resolver;
    });
  const routes = new Map<string, StaticRoute>();
  for (const [domain, route] of Object.entries(options.routes ?? {})) {
    routes.set(normalizeDomain(domain) ?? domain.toLowerCase(), route);
  }

  return {
    async resolve(rawDomain: string): Promise<Resolution> {
      const domain = normalizeDomain(rawDomain);
      if (domain === null) {
        return fail(550, '5.1.2', `destination domain "${rawDomain}" is not a valid host name`);
      }
      const dns = dnsFactory();
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<Resolution>((resolve) => {
        timer = setTimeout(() => {
          dns.cancel();
          resolve(fail(451, '4.4.3', `DNS lookup for ${domain} timed out`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([lookup(dns, domain), deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
  };

  async function lookup(dns: DnsClient, domain: string): Promise<Resolution> {
    const route = routes.get(domain);
    if (route) return resolveRoute(dns, domain, route);
    let records: { exchange: string; priority: number }[];
    try {
      records = await dns.resolveMx(domain);
    } catch (err) {
      const failure = classifyDnsError(err);
      if (failure.reason === 'nxdomain')
        return fail(550, '5.1.2', `domain ${domain} does not exist (NXDOMAIN)`);
      if (failure.reason === 'transient') {
        return fail(451, '4.4.3', `MX lookup for ${domain} failed temporarily (${failure.detail})`);
      }
      records = [];
    }
    if (records.length === 0) return implicitMx(dns, domain);
    const real = records.filter((r) => !isNullExchange(r.exchange));
    if (real.length === 0) return fail(556, '5.1.10', `domain ${domain} accepts no mail (null MX)`);
    return resolveExchanges(dns, domain, orderMx(real, random));
  }

  async function resolveRoute(dns: DnsClient, domain: string, route: StaticRoute): Promise<Resolution> {
    try {
      const addresses = await addressesOf(dns, route.host);
      return ok(addresses.map((address) => ({ name: route.host, address, port: route.port, preference: 0 })));
    } catch (err) {
      // A route is operator configuration: a broken one must not bounce mail, only hold it.
      const detail = err instanceof LookupFailure ? err.detail : errorMessage(err);
      return fail(451, '4.4.3', `static route host for ${domain} does not resolve (${detail})`);
    }
  }

  async function implicitMx(dns: DnsClient, domain: string): Promise<Resolution> {
    try {
      const addresses = await addressesOf(dns, domain);
      return ok(addresses.map((address) => ({ name: domain, address, port, preference: 0 })));
    } catch (err) {
      const failure = err instanceof LookupFailure ? err : classifyDnsError(err);
      if (failure.reason === 'transient') {
        return fail(451, '4.4.3', `address lookup for ${domain} failed temporarily (${failure.detail})`);
      }
      return fail(550, '5.1.2', `domain ${domain} has no MX and no address records`);
    }
  }

  async function resolveExchanges(
    dns: DnsClient,
    domain: string,
    exchanges: readonly { name: string; preference: number }[],
  ): Promise<Resolution> {
    const settled = await Promise.allSettled(exchanges.map((mx) => addressesOf(dns, mx.name)));
    const hosts: MxHost[] = [];
    let transient: string | null = null;
    for (const [i, result] of settled.entries()) {
      const mx = exchanges[i]!;
      if (result.status === 'fulfilled') {
        for (const address of result.value)
          hosts.push({ name: mx.name, address, port, preference: mx.preference });
      } else if (result.reason instanceof LookupFailure && result.reason.reason !== 'transient') {
        continue;
      } else {
        transient ??= `${mx.name}: ${result.reason instanceof LookupFailure ? result.reason.detail : errorMessage(result.reason)}`;
      }
    }
    if (hosts.length > 0) return ok(hosts);
    if (transient !== null) return fail(451, '4.4.3', `no MX host of ${domain} resolved (${transient})`);
    return fail(550, '5.4.4', `no MX host of ${domain} has an address`);
  }

  function ok(hosts: MxHost[]): Resolution {
    return { ok: true, hosts: hosts.slice(0, maxHosts) };
  }
}

function fail(code: number, enhanced: string, text: string): Resolution {
  return { ok: false, outcome: localFailure(code, enhanced, text, null) };
}

/** RFC 7505: a single MX of "." (node reports the root as an empty exchange). */
function isNullExchange(exchange: string): boolean {
  return exchange === '' || exchange === '.';
}

/** Preference order, equal preferences shuffled (RFC 5321 §5.1), duplicates removed. */
export function orderMx(
  records: readonly { exchange: string; priority: number }[],
  random: () => number = Math.random,
): { name: string; preference: number }[] {
  const byPreference = new Map<number, string[]>();
  const seen = new Set<string>();
  for (const r of records) {
    const name = r.exchange.toLowerCase().replace(/\.$/, '');
    if (seen.has(name)) continue;
    seen.add(name);
    const group = byPreference.get(r.priority) ?? [];
    group.push(name);
    byPreference.set(r.priority, group);
  }
  const ordered: { name: string; preference: number }[] = [];
  for (const preference of [...byPreference.keys()].sort((a, b) => a - b)) {
    const group = byPreference.get(preference)!;
    for (let i = group.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [group[i], group[j]] = [group[j]!, group[i]!];
    }
    for (const name of group) ordered.push({ name, preference });
  }
  return ordered;
}

/** A and AAAA of a name (IPv4 first); throws LookupFailure when there is none. */
async function addressesOf(dns: DnsClient, name: string): Promise<string[]> {
  if (isIP(name) !== 0) return [name];
  const [v4, v6] = await Promise.allSettled([dns.resolve4(name), dns.resolve6(name)]);
  const addresses = [
    ...(v4.status === 'fulfilled' ? v4.value : []),
    ...(v6.status === 'fulfilled' ? v6.value : []),
  ];
  if (addresses.length > 0) return addresses;
  const failures = [v4, v6].flatMap((r) => (r.status === 'rejected' ? [classifyDnsError(r.reason)] : []));
  const transient = failures.find((f) => f.reason === 'transient');
  if (transient) throw transient;
  if (failures.some((f) => f.reason === 'nxdomain')) throw new LookupFailure('nxdomain', `${name}: NXDOMAIN`);
  throw new LookupFailure('nodata', `${name}: no A or AAAA records`);
}

/**
 * A resolver that answers from a fixed map (KumoMTA `TestResolver`): each domain goes to the
 * given host(s), which must be IP addresses; any other domain fails as NXDOMAIN would (5.1.2).
 * For DNS failures in tests, implement {@link DestinationResolver} directly.
 */
export function createStaticResolver(
  table: Readonly<Record<string, StaticRoute | readonly StaticRoute[]>>,
): DestinationResolver {
  const map = new Map<string, readonly StaticRoute[]>();
  for (const [domain, value] of Object.entries(table)) {
    const list: readonly StaticRoute[] = Array.isArray(value) ? value : [value as StaticRoute];
    map.set(normalizeDomain(domain) ?? domain.toLowerCase(), list);
  }
  return {
    resolve(rawDomain: string): Promise<Resolution> {
      const domain = normalizeDomain(rawDomain) ?? rawDomain.toLowerCase();
      const list = map.get(domain);
      if (!list) return Promise.resolve(fail(550, '5.1.2', `domain ${domain} does not exist (NXDOMAIN)`));
      const hosts = list.map((r) => ({ name: r.host, address: r.host, port: r.port, preference: 0 }));
      return Promise.resolve({ ok: true, hosts });
    },
  };
}
