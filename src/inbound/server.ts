import type { SMTPServer, SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import type { ListenAddress } from '../config/index.js';
import { GreetingServer, PerIpLimit, armDataDeadline } from '../listener/index.js';
import type { Logger } from '../logging/index.js';
import { PetrelError, localCounters, smtpError, type SharedCounters } from '../shared/index.js';
import type { Spool } from '../spool/index.js';
import type { TlsMaterial } from '../tls/index.js';
import type { Verp } from '../verp/index.js';
import { handleInbound, type InboundTarget, type ReportDeps } from './reports.js';

export interface InboundSettings {
  readonly listen: readonly ListenAddress[];
  readonly bounceDomain: string;
  readonly fblAddress: string;
  readonly maxMessageSize: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  readonly idleTimeoutMs: number;
  /** Total time DATA may take, however slowly its bytes drip. */
  readonly dataTimeoutMs: number;
  /** Pause before the banner; bytes sent during it get 421 and a close. 0: greet at once. */
  readonly greetingPauseMs: number;
}

export interface InboundDeps extends ReportDeps {
  readonly settings: InboundSettings;
  readonly hostname: string;
  readonly tls: TlsMaterial;
  readonly spool: Spool;
  readonly verp: Verp;
  readonly logger: Logger;
  /** Where per-IP sessions are counted: the node's counters when it has workers. Default: its own. */
  readonly counters?: SharedCounters;
}

export interface InboundService {
  start(): Promise<{ host: string; port: number }[]>;
  close(): Promise<void>;
  /** New certificate for new STARTTLS sessions. */
  updateTls(material: TlsMaterial): void;
}

/**
 * Bytes of a message that are read: a report's own fields and the returned original's headers
 * come first, and the rest of a large original never changes what the report says.
 */
const READ_BYTES = 1024 * 1024;

const UNSUB = /^unsub-([A-Za-z0-9_-]{24})@(.+)$/i;

/**
 * The listener for bounces, feedback-loop reports and unsubscribe mail (port 25). It accepts
 * RCPT only for valid VERP tokens, the feedback address and unsubscribe tokens: never a relay.
 */
export function createInboundService(deps: InboundDeps): InboundService {
  const { settings, logger, spool, verp } = deps;
  const targets = new Map<string, InboundTarget[]>();
  const perIp = new PerIpLimit(
    deps.counters ?? localCounters({ now: deps.now }),
    'inbound',
    settings.maxConnectionsPerIp,
  );
  const servers: SMTPServer[] = [];

  const server = (): SMTPServer => {
    const s: SMTPServer = new GreetingServer(
      {
        name: deps.hostname,
        banner: 'Petrel',
        key: deps.tls.key,
        cert: deps.tls.cert,
        size: settings.maxMessageSize,
        disableReverseLookup: true,
        authOptional: true,
        disabledCommands: ['AUTH'],
        maxRecipients: 20,
        maxClients: settings.maxConnections,
        socketTimeout: settings.idleTimeoutMs,
        closeTimeout: 5_000,
        logger: false,
        onConnect(session, cb) {
          perIp.admit(session.id, session.remoteAddress).then(
            (admitted) => {
              if (admitted) return cb();
              logger.warn(
                { sessionId: session.id, remoteIp: session.remoteAddress },
                'too many connections from one address',
              );
              cb(smtpError(421, '4.7.0', 'Too many connections from your address, try again later'));
            },
            (err: unknown) => {
              logger.error({ err, sessionId: session.id }, 'inbound connection check failed');
              cb(smtpError(421, '4.3.0', 'Temporary local problem'));
            },
          );
        },
        onClose(session) {
          perIp.release(session.id);
          targets.delete(session.id);
        },
        onMailFrom(_address, session, cb) {
          targets.set(session.id, []);
          cb();
        },
        onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, cb) {
          void resolveTarget(address.address)
            .then((target) => {
              if (!target) return cb(smtpError(550, '5.1.1', 'No such recipient here'));
              targets.get(session.id)?.push(target);
              cb();
            })
            .catch((err: unknown) => {
              logger.error({ err, sessionId: session.id }, 'inbound RCPT check failed');
              cb(smtpError(451, '4.3.0', 'Temporary local problem'));
            });
        },
        onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb) {
          const disarm = armDataDeadline(s, session.id, settings.dataTimeoutMs, () =>
            logger.warn({ sessionId: session.id }, 'DATA deadline passed, closing connection'),
          );
          stream.once('end', disarm);
          const chunks: Buffer[] = [];
          let size = 0;
          stream.on('data', (c: Buffer) => {
            if (size < READ_BYTES) chunks.push(c.subarray(0, READ_BYTES - size));
            size += c.length;
          });
          stream.once('end', () => {
            if (stream.sizeExceeded || size > settings.maxMessageSize) {
              return cb(smtpError(552, '5.3.4', 'Message too big'));
            }
            const accepted = targets.get(session.id) ?? [];
            targets.set(session.id, []);
            handleInbound(Buffer.concat(chunks), accepted, deps)
              .then(() => cb(null, '2.0.0 Report received'))
              .catch((err: unknown) => {
                logger.error({ err, sessionId: session.id }, 'inbound report failed');
                cb(smtpError(451, '4.3.0', 'Temporary local problem'));
              });
          });
        },
      },
      settings.greetingPauseMs,
    );
    return s;
  };

  const resolveTarget = async (address: string): Promise<InboundTarget | null> => {
    const lower = address.toLowerCase();
    if (lower === settings.fblAddress.toLowerCase()) return { kind: 'fbl' };
    const id = verp.parse(lower);
    if (id !== null) return { kind: 'bounce', recipientId: id };
    const m = UNSUB.exec(address);
    if (m && m[2]!.toLowerCase() === settings.bounceDomain.toLowerCase()) {
      const found = await spool.suppressions.resolveUnsubscribeToken(m[1]!);
      if (found) return { kind: 'unsubscribe', accountId: found.accountId, address: found.address };
    }
    return null;
  };

  return {
    async start() {
      const bound: { host: string; port: number }[] = [];
      for (const at of settings.listen) {
        const s = server();
        s.on('error', (err) => logger.warn({ err }, 'inbound listener error'));
        await new Promise<void>((resolve, reject) => {
          s.server.once('error', (err: Error) =>
            reject(
              new PetrelError(
                'PETREL_LISTEN_FAILED',
                `inbound: cannot listen on ${at.host}:${at.port}: ${err.message}`,
              ),
            ),
          );
          s.listen(at.port, at.host, () => resolve());
        });
        servers.push(s);
        const addr = s.server.address();
        bound.push({ host: at.host, port: typeof addr === 'object' && addr ? addr.port : at.port });
      }
      return bound;
    },
    async close() {
      await Promise.allSettled(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
    updateTls(material) {
      for (const s of servers) s.updateSecureContext({ key: material.key, cert: material.cert });
    },
  };
}
