/**
 * Schema versions, applied in order inside one transaction each; `PRAGMA user_version` records
 * the last one applied. Never edit a released entry: add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    allowed_domains TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    account_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    mail_from TEXT NOT NULL,
    header_message_id TEXT,
    size INTEGER NOT NULL,
    body BLOB NOT NULL,
    listener TEXT NOT NULL,
    received_at INTEGER NOT NULL
  );
  CREATE TABLE recipients (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    rcpt_to TEXT NOT NULL,
    domain TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_reply TEXT,
    lease_until INTEGER,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX recipients_message ON recipients(message_id);
  CREATE INDEX recipients_due ON recipients(next_attempt_at) WHERE state = 'queued';
  CREATE INDEX recipients_domain_state ON recipients(domain, state);
  `,
  `
  CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recipient_id INTEGER,
    account_id INTEGER,
    domain TEXT,
    attempt INTEGER,
    mx TEXT,
    reply_code INTEGER,
    reply_enhanced TEXT,
    reply_text TEXT,
    details TEXT
  );
  CREATE INDEX events_message ON events(message_id);
  CREATE INDEX events_at ON events(at);
  CREATE TABLE domain_suspensions (
    domain TEXT PRIMARY KEY,
    reason TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
  );
  CREATE INDEX recipients_inflight ON recipients(id) WHERE state = 'inflight';
  `,
  `
  CREATE TABLE dkim_keys (
    id INTEGER PRIMARY KEY,
    domain TEXT NOT NULL,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    private_key_path TEXT NOT NULL,
    public_key TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    UNIQUE (domain, selector)
  );
  `,
  `
  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
  );
  INSERT INTO settings (key, value) VALUES ('install_secret', randomblob(32));
  ALTER TABLE messages ADD COLUMN stream TEXT NOT NULL DEFAULT 'transactional';
  CREATE TABLE suppressions (
    id INTEGER PRIMARY KEY,
    account_id INTEGER,
    address_hash TEXT NOT NULL,
    address TEXT,
    scope TEXT NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX suppressions_key ON suppressions(address_hash, coalesce(account_id, 0), scope);
  CREATE TABLE bounces (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    account_id INTEGER,
    recipient_id INTEGER,
    message_id TEXT,
    address_hash TEXT NOT NULL,
    address TEXT,
    kind TEXT NOT NULL,
    category TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT,
    diagnostic TEXT,
    source TEXT NOT NULL
  );
  CREATE INDEX bounces_address ON bounces(address_hash, at);
  CREATE TABLE unsubscribe_tokens (
    token TEXT PRIMARY KEY,
    account_id INTEGER,
    address_hash TEXT NOT NULL,
    address TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  CREATE INDEX unsubscribe_tokens_address ON unsubscribe_tokens(address_hash, account_id);
  ALTER TABLE accounts ADD COLUMN default_stream TEXT NOT NULL DEFAULT 'transactional';
  `,
  `
  CREATE TABLE privacy_audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    address_hash TEXT NOT NULL,
    account_id INTEGER,
    counts TEXT NOT NULL
  );
  CREATE TABLE webhook_cursors (
    url_hash TEXT PRIMARY KEY,
    last_event_id INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX recipients_rcpt ON recipients(rcpt_to COLLATE NOCASE);
  CREATE INDEX messages_mail_from ON messages(mail_from COLLATE NOCASE);
  `,
  `
  ALTER TABLE recipients ADD COLUMN abort_requested INTEGER NOT NULL DEFAULT 0;
  `,
  `
  CREATE TABLE events_v2 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    type TEXT NOT NULL,
    message_id TEXT NOT NULL,
    recipient_id INTEGER,
    account_id INTEGER,
    domain TEXT,
    attempt INTEGER,
    mx TEXT,
    reply_code INTEGER,
    reply_enhanced TEXT,
    reply_text TEXT,
    details TEXT
  );
  INSERT INTO events_v2 SELECT * FROM events;
  DROP TABLE events;
  ALTER TABLE events_v2 RENAME TO events;
  CREATE INDEX events_message ON events(message_id);
  CREATE INDEX events_at ON events(at);
  `,
  `
  DROP INDEX recipients_domain_state;
  CREATE INDEX recipients_domain_state ON recipients(domain, state, message_id);
  `,
  // Leases name their holder; expired ones are found by lease_until. The due index covers the
  // domain so that leasing can skip destinations that already hold enough work. Copies of a
  // multi-copy message are written as 'staged' and made 'queued' together (all or none).
  `
  ALTER TABLE recipients ADD COLUMN lease_holder TEXT;
  DROP INDEX recipients_due;
  CREATE INDEX recipients_due ON recipients(next_attempt_at, domain, abort_requested) WHERE state = 'queued';
  CREATE INDEX recipients_lease ON recipients(lease_until) WHERE state = 'inflight';
  CREATE INDEX recipients_staged ON recipients(message_id) WHERE state = 'staged';
  `,
  // The addresses each message mentions once decoded, so that erasure finds them without reading
  // bodies. Messages stored before have mentions_indexed = 0: erasure decodes those.
  `
  CREATE TABLE message_mentions (
    address TEXT NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    PRIMARY KEY (address, message_id)
  ) WITHOUT ROWID;
  CREATE INDEX message_mentions_message ON message_mentions(message_id);
  ALTER TABLE messages ADD COLUMN mentions_indexed INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX messages_unindexed ON messages(mentions_indexed) WHERE mentions_indexed = 0;
  `,
  // A key sealed with the spool key, for spools shared by several nodes (NULL: in its file).
  `
  ALTER TABLE dkim_keys ADD COLUMN sealed_key BLOB;
  `,
  // Shaping rules' decisions per destination, shared by every worker (see ShapingDecision).
  `
  CREATE TABLE shaping_decisions (
    destination TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    action TEXT NOT NULL,
    reply TEXT NOT NULL,
    connections_factor REAL NOT NULL,
    rate_factor REAL NOT NULL,
    rate_cap REAL,
    started_at INTEGER NOT NULL,
    until INTEGER NOT NULL,
    ramp_ms INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // Accounts whose marketing mail the complaint/bounce guard paused; deliveries per account
  // for the guard's window.
  `
  CREATE TABLE account_pauses (
    account_id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resumed_at INTEGER
  );
  CREATE INDEX events_account ON events(account_id, type, at);
  CREATE INDEX bounces_account ON bounces(account_id, at);
  `,
  // When the sender was told that the recipient is delayed (NULL: not yet); told once.
  `
  ALTER TABLE recipients ADD COLUMN delay_warned_at INTEGER;
  `,
  // Per-account limits; NULL: none. A rate is a count per window, as written ("600/min"). The
  // day's count after a restart is read through events_account.
  `
  ALTER TABLE accounts ADD COLUMN rate_count INTEGER;
  ALTER TABLE accounts ADD COLUMN rate_window_ms INTEGER;
  ALTER TABLE accounts ADD COLUMN daily_quota INTEGER;
  `,
  // Egress: an account's own source, and warm-up counts per source, provider and UTC day.
  `
  ALTER TABLE accounts ADD COLUMN egress TEXT;
  CREATE TABLE egress_usage (
    source TEXT NOT NULL,
    provider TEXT NOT NULL,
    day TEXT NOT NULL,
    sent INTEGER NOT NULL,
    PRIMARY KEY (source, provider, day)
  );
  `,
  // API keys: only a hash of each secret; an account's keys go with it.
  `
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    networks TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    last_used_at INTEGER,
    revoked_at INTEGER
  );
  CREATE INDEX api_keys_account ON api_keys(account_id);
  `,
  // Idempotency-Key of API calls: the answer given, kept a day; NULL status: a call under way.
  `
  CREATE TABLE api_idempotency (
    api_key TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    status INTEGER,
    response TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (api_key, idem_key)
  );
  CREATE INDEX api_idempotency_created ON api_idempotency(created_at);
  `,
];
