import { setTimeout as sleep } from 'node:timers/promises';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import type { SubmissionConfig } from '../config/index.js';
import type { ListenAddress } from '../config/index.js';
import { ipInCidrs } from '../config/index.js';
import type { Logger } from '../logging/index.js';
import type { Account, Spool } from '../spool/index.js';
import type { TlsMaterial } from '../tls/index.js';
import {
  DUMMY_PASSWORD_HASH,
  PetrelError,
  SmtpReplyError,
  domainMatches,
  parseAddress,
  smtpError,
  verifyPassword,
  localCounters,
  type Clock,
  type SharedCounters,
} from '../shared/index.js';
import { AuthGuard } from './auth-guard.js';
import { GreetingServer, PerIpLimit, armDataDeadline } from '../listener/index.js';
import { acceptMessage, PAUSED_TEXT } from './accept.js';
import { submitDirect, type DirectResult, type DirectSubmission } from './direct.js';
import { AccountLimiter, type AccountUsage, type LimitReason } from './account-limits.js';
import { blockingEntry } from '../suppression/index.js';

export type ListenerName = 'submission' | 'submissions';

export interface SubmissionDeps {
  readonly config: SubmissionConfig;
  readonly hostname: string;
  readonly tls: TlsMaterial;
  readonly spool: Spool;
  readonly logger: Logger;
  readonly clock: Clock;
  /**
   * DKIM-signs a normalized message for its From: domain: the header fields to prepend and
   * whether one signature is the From: domain's own (aligned); null when nothing could sign.
   */
  readonly sign?: (
    message: Buffer,
    fromDomain: string,
  ) => Promise<{ header: Buffer; aligned: boolean } | null>;
  /** Refuse mail that cannot be signed (read per message: SIGHUP may change it). */
  readonly requireSignature?: () => boolean;
  /** List-Unsubscribe fields for a marketing recipient (RFC 2369, RFC 8058). */
  readonly unsubscribeHeaders?: (accountId: number, address: string) => Promise<string[]>;
  /** Whether the complaint/bounce guard paused this account's marketing mail. */
  readonly marketingPaused?: (accountId: number) => boolean;
  /**
   * Where per-IP sessions, AUTH failures and the accounts' rates and daily quotas are counted:
   * the node's counters when it has workers (the cluster's with Redis). Default: this service's own.
   */
  readonly counters?: SharedCounters;
  /** Called for each MAIL FROM or RCPT TO an account's limit refused (451 4.7.1). */
  readonly onLimited?: (account: Account, reason: LimitReason) => void;
  /** Called after a message is durably queued (delivery can start at once), with the time DATA took to commit. */
  readonly onQueued?: (listener: ListenerName, seconds: number) => void;
}

export interface BoundListener {
  readonly name: ListenerName;
  readonly host: string;
  readonly port: number;
}

/** The submission listeners (587 STARTTLS, 465 implicit TLS) as one unit. */
export interface SubmissionService {
  /** Binds every configured listener; rejects (and closes what was bound) if any fails. */
  start(): Promise<BoundListener[]>;
  /**
   * Stops accepting, lets open sessions finish for `close_timeout`, then sends 421 to the rest.
   * Messages whose 250 was sent are already durable.
   */
  close(): Promise<void>;
  /** New certificate for new TLS sessions; open sessions keep theirs. */
  updateTls(material: TlsMaterial): void;
  /** Today's count of every account with a daily quota, as every worker and node share it. */
  accountUsage(): Promise<AccountUsage[]>;
  /** A whole message from another door (the HTTP API), through the same checks as SMTP. */
  submit(input: DirectSubmission): Promise<DirectResult>;
}

/** Who a session sends as, fixed at AUTH or, for trusted networks, at MAIL FROM. */
interface SessionUser {
  readonly account: string;
}

/** What RCPT needs of the sending account, fixed at MAIL FROM. */
/** The account MAIL FROM checked, kept for RCPT and the end of DATA of the same transaction. */
interface SenderState {
  readonly account: Account;
}

export function createSubmissionService(deps: SubmissionDeps): SubmissionService {
  const { config, logger, spool, clock } = deps;
  const counters = deps.counters ?? localCounters(clock);
  const guard = new AuthGuard(counters, config.auth_max_failures, config.auth_failure_window);
  const perIp = new PerIpLimit(counters, 'submission', config.max_connections_per_ip);
  const limiter = new AccountLimiter(counters, spool.accounts, clock);
  const senders = new Map<string, SenderState>();
  const servers: { server: SMTPServer; name: ListenerName }[] = [];

  const isTrusted = (ip: string): boolean => ipInCidrs(ip, config.trusted_networks);

  const onConnect = (session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const ip = session.remoteAddress;
    perIp.admit(session.id, ip).then(
      (admitted) => {
        if (admitted) return callback();
        logger.warn({ sessionId: session.id, remoteIp: ip }, 'too many connections from one address');
        callback(smtpError(421, '4.7.0', 'Too many connections from your address, try again later'));
      },
      (err: unknown) => failEdge(logger, session, err, callback),
    );
  };

  const onClose = (session: SMTPServerSession): void => {
    senders.delete(session.id);
    perIp.release(session.id);
  };

  const onAuth = (
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void => {
    const ip = session.remoteAddress;
    void (async () => {
      if (await guard.isBlocked(ip)) {
        logger.warn({ sessionId: session.id, remoteIp: ip }, 'auth refused: too many failures');
        return callback(smtpError(454, '4.7.0', 'Too many failed authentications, try again later'));
      }
      const name = auth.username ?? '';
      const impersonating = auth.method === 'PLAIN' && !!auth.authzid && auth.authzid !== auth.authcid;
      const account = impersonating || !name ? null : await spool.accounts.get(name);
      // Unknown users cost a full hash too, so timing does not tell which names exist.
      const ok = await verifyPassword(auth.password ?? '', account?.passwordHash ?? DUMMY_PASSWORD_HASH);
      if (account && ok && !impersonating) {
        await guard.recordSuccess(ip);
        logger.info({ sessionId: session.id, accountId: account.id, method: auth.method }, 'authenticated');
        return callback(null, { user: { account: account.name } satisfies SessionUser });
      }
      const delay = await guard.recordFailure(ip);
      logger.warn({ sessionId: session.id, remoteIp: ip, method: auth.method }, 'authentication failed');
      await sleep(delay);
      callback(null, { message: '5.7.8 Authentication credentials invalid', responseCode: 535 });
    })().catch((err: unknown) => failEdge(logger, session, err, callback));
  };

  /** The reply to a MAIL or RCPT an account's limit refuses: temporary, the client retries later. */
  const limited = (sessionId: string, account: Account, reason: LimitReason): Error => {
    logger.info({ sessionId, accountId: account.id, limit: reason }, 'refused: account limit');
    deps.onLimited?.(account, reason);
    return reason === 'rate'
      ? smtpError(451, '4.7.1', 'Account rate limit exceeded, try again later')
      : smtpError(451, '4.7.1', 'Account daily quota exceeded, try again later');
  };

  const onMailFrom = (
    address: SMTPServerAddress,
    session: SMTPServerSession,
    callback: (err?: Error | null) => void,
  ): void => {
    void (async () => {
      const user = session.user as SessionUser | undefined;
      let accountName: string;
      if (user) accountName = user.account;
      else if (isTrusted(session.remoteAddress) && config.trusted_account)
        accountName = config.trusted_account;
      else return callback(smtpError(530, '5.7.0', 'Authentication required'));

      const account = await spool.accounts.get(accountName);
      if (!account) {
        logger.error(
          { sessionId: session.id, via: user ? 'auth' : 'trusted_account' },
          'sending account does not exist',
        );
        return callback(
          smtpError(user ? 535 : 451, user ? '5.7.8' : '4.3.0', 'Sending account is not available'),
        );
      }
      if (address.address === '') {
        return callback(smtpError(550, '5.7.1', 'A null reverse-path is not accepted for submission'));
      }
      const parsed = parseAddress(address.address);
      if (!parsed) return callback(smtpError(553, '5.1.7', 'Bad sender address syntax'));
      if (!account.allowedDomains.some((d) => domainMatches(parsed.domain, d))) {
        return callback(smtpError(553, '5.7.1', 'Sender domain not allowed for this account'));
      }
      const reached = await limiter.reached(account);
      if (reached) return callback(limited(session.id, account, reached));
      senders.set(session.id, { account });
      if (!user) session.user = { account: account.name } satisfies SessionUser;
      callback();
    })().catch((err: unknown) => failEdge(logger, session, err, callback));
  };

  const onRcptTo = (
    address: SMTPServerAddress,
    session: SMTPServerSession,
    callback: (err?: Error | null) => void,
  ): void => {
    if (!parseAddress(address.address)) {
      callback(smtpError(553, '5.1.3', 'Bad recipient address syntax'));
      return;
    }
    const sender = senders.get(session.id);
    // The message's own X-Petrel-Stream is not known yet: a marketing account's unsubscribes
    // count here, others' only at the end of DATA.
    const stream = sender?.account.defaultStream === 'marketing' ? 'marketing' : null;
    if (stream === 'marketing' && sender && deps.marketingPaused?.(sender.account.id)) {
      callback(smtpError(451, '4.7.1', PAUSED_TEXT));
      return;
    }
    void (async () => {
      const entry = await blockingEntry(
        spool.suppressions,
        sender?.account.id ?? null,
        address.address,
        stream,
      );
      if (entry) return callback(smtpError(550, '5.7.1', `Recipient is suppressed (${entry.reason})`));
      // Counted only once nothing else refuses the recipient: a quota counts accepted recipients.
      const refused = sender ? await limiter.admit(sender.account) : null;
      if (refused && sender) return callback(limited(session.id, sender.account, refused));
      callback();
    })().catch((err: unknown) => failEdge(logger, session, err, callback));
  };

  const makeOnData =
    (name: ListenerName, getServer: () => SMTPServer) =>
    (
      stream: SMTPServerDataStream,
      session: SMTPServerSession,
      callback: (err?: Error | null, message?: string) => void,
    ): void => {
      const disarm = armDataDeadline(getServer(), session.id, config.data_timeout, () =>
        logger.warn({ sessionId: session.id }, 'DATA deadline passed, closing connection'),
      );
      const started = performance.now();
      acceptMessage({
        stream,
        session,
        listener: name,
        account: senders.get(session.id)?.account ?? null,
        config,
        hostname: deps.hostname,
        spool,
        clock,
        logger,
        sign: deps.sign,
        requireSignature: deps.requireSignature?.() ?? false,
        unsubscribeHeaders: deps.unsubscribeHeaders,
        marketingPaused: deps.marketingPaused,
      })
        .then((queueId) => {
          callback(null, `2.0.0 OK queued as ${queueId}`);
          deps.onQueued?.(name, (performance.now() - started) / 1000);
        })
        .catch((err: unknown) => failEdge(logger, session, err, callback))
        .finally(disarm);
    };

  const build = (name: ListenerName): SMTPServer => {
    let server: SMTPServer | null = null;
    // smtp-server's own 100 ms, or none: see GreetingServer.
    server = new GreetingServer(
      {
        name: deps.hostname,
        banner: 'Petrel',
        secure: name === 'submissions',
        key: deps.tls.key,
        cert: deps.tls.cert,
        minVersion: 'TLSv1.2',
        size: config.max_message_size,
        maxRecipients: config.max_recipients,
        authMethods: ['PLAIN', 'LOGIN'],
        authOptional: true,
        allowInsecureAuth: false,
        disableReverseLookup: !config.reverse_lookup,
        maxClients: config.max_connections,
        socketTimeout: config.idle_timeout,
        closeTimeout: config.close_timeout,
        logger: false,
        onConnect,
        onClose,
        onAuth,
        onMailFrom,
        onRcptTo,
        onData: makeOnData(name, () => server!),
      },
      config.greeting_delay ? 100 : 0,
    );
    server.on('error', (err) => logger.warn({ err, listener: name }, 'listener error'));
    return server;
  };

  const listen = (name: ListenerName, at: ListenAddress): Promise<BoundListener> =>
    new Promise((resolve, reject) => {
      const server = build(name);
      const net = server.server;
      const onError = (err: Error): void => {
        reject(
          new PetrelError(
            'PETREL_LISTEN_FAILED',
            `${name}: cannot listen on ${at.host}:${at.port}: ${err.message}`,
          ),
        );
      };
      net.once('error', onError);
      server.listen(at.port, at.host, () => {
        net.off('error', onError);
        servers.push({ server, name });
        const bound = net.address();
        const port = typeof bound === 'object' && bound ? bound.port : at.port;
        resolve({ name, host: at.host, port });
      });
    });

  const closeAll = (): Promise<void> =>
    Promise.allSettled(
      servers.splice(0).map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))),
    ).then(() => undefined);

  return {
    async start() {
      const bound: BoundListener[] = [];
      try {
        for (const at of config.listen) bound.push(await listen('submission', at));
        for (const at of config.tls_listen) bound.push(await listen('submissions', at));
      } catch (err) {
        await closeAll();
        throw err;
      }
      return bound;
    },
    close: closeAll,
    updateTls(material) {
      for (const { server } of servers)
        server.updateSecureContext({ key: material.key, cert: material.cert });
    },
    accountUsage: () => limiter.usage(),
    submit: (input) =>
      submitDirect(
        {
          common: {
            config,
            hostname: deps.hostname,
            spool,
            clock,
            logger,
            sign: deps.sign,
            requireSignature: deps.requireSignature?.() ?? false,
            unsubscribeHeaders: deps.unsubscribeHeaders,
            marketingPaused: deps.marketingPaused,
          },
          limiter,
          limitText: (account, reason) => limited(input.requestId, account, reason),
        },
        input,
      ),
  };
}

/** Errors at the edge: known replies go out as they are; anything else is a bland 451. */
function failEdge(
  logger: Logger,
  session: SMTPServerSession,
  err: unknown,
  callback: (err: Error) => void,
): void {
  if (err instanceof SmtpReplyError) {
    callback(err);
    return;
  }
  logger.error({ sessionId: session.id, err }, 'submission failed');
  callback(smtpError(451, '4.3.0', 'Temporary local problem, try again later'));
}
