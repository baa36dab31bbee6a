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
];
