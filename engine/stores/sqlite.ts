// The Store on one SQLite file (better-sqlite3): one process, no server to run. Durability is the
// point of this file: when `ingest` resolves, the BSP is acknowledged, so the commit must survive a
// power cut, not only a crash. SQLite's own way (synchronous=FULL) fsyncs the WAL inside COMMIT, on
// the event loop: at 1500 concurrent sends that was a tenth of the main thread's time, every request
// waiting behind it. Here SQLite runs with synchronous=NORMAL (no sync at commit; checkpoints still
// sync) and the store fdatasyncs the WAL itself in libuv's thread pool, one sync for every commit made
// while the previous one ran, and no write's promise resolves before the sync after its commit: the
// guarantee FULL gives, without the wait on the event loop.
import { closeSync, existsSync, fdatasync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { CHAIN_TOP, type CallbackRecord, type ClickLink, type IngestResult, type NewCallback, type NewPending, type NewQuarantined, type PendingRecord, type QuarantineRecord, type Store, type StoreStats, type TraceEvent } from './store.js';
import type { StatusEvent } from '../mapping/webhook.js';

export interface SqliteStoreOptions {
  /**
   * FULL (default): a write's promise resolves once its commit is on disk (the WAL synced), so an
   * acknowledged webhook survives a power cut. NORMAL never syncs at commit: it survives a killed
   * process but may lose the last commits on power loss; for benchmarks.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** Syncs the WAL's file descriptor (default: fs.fdatasync in libuv's pool); replaced by tests to make it fail. */
  syncWal?: (fd: number) => Promise<void>;
  /** How long dedupe keys and per-msgId progress are kept; BSPs retry webhooks for days. */
  dedupeTtlMs?: number;
  /** Clock for correlation expiry (the Store interface passes no `now` there). */
  clock?: () => number;
  /** Hears every statement SQLite runs (better-sqlite3's `verbose`): the status-path cost count reads it. */
  onStatement?: (sql: string) => void;
  /**
   * What this connection serves. 'all' (default): everything. The SQLite thread runs two
   * (engine/stores/sqlite-thread.ts): 'store' migrates both files, then lets go of the trace's, and
   * answers everything but the trace; 'trace', opened after it, answers only the trace methods.
   * Separate connections because BEGIN IMMEDIATE takes the write lock of every attached file: the
   * store's commits would wait for the trace's and the other way round.
   */
  part?: 'all' | 'store' | 'trace';
}

const DAY = 24 * 60 * 60 * 1000;

// Migrations by PRAGMA user_version: entry i brings the schema from version i to i + 1. Append only.
export const MIGRATIONS = [
  `
  CREATE TABLE correlations (
    tenant TEXT NOT NULL, provider_message_id TEXT NOT NULL, msg_id TEXT NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, provider_message_id)) WITHOUT ROWID;
  CREATE INDEX correlations_expiry ON correlations (expires_at);

  CREATE TABLE dedupe (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;
  CREATE INDEX dedupe_expiry ON dedupe (expires_at);

  -- AUTOINCREMENT: ids are never reused after a sweep, so an id quoted in a log stays unambiguous.
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('status', 'incoming')),
    msg_id TEXT,
    rank INTEGER NOT NULL,
    payload TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    mapping_version TEXT,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead', 'skipped')),
    last_error TEXT,
    delivered_at INTEGER -- when it left the outbox: delivered, or skipped
  );
  -- Partial indexes: delivered rows (nearly all of a large table) never enter the hot ones.
  CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE state = 'pending';
  CREATE INDEX outbox_queue ON outbox (tenant, msg_id, rank, created_at, id, lease_until) WHERE state = 'pending' AND rank > 0;
  CREATE INDEX outbox_dead ON outbox (tenant, id) WHERE state = 'dead';
  CREATE INDEX outbox_done ON outbox (state, delivered_at) WHERE state IN ('delivered', 'skipped');

  -- Rows per state, kept by triggers: counting a week of delivered history takes a quarter second,
  -- too long to block the event loop for a metrics scrape.
  CREATE TABLE outbox_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
  INSERT INTO outbox_counts (state, n) VALUES ('pending', 0), ('delivered', 0), ('dead', 0), ('skipped', 0);
  CREATE TRIGGER outbox_counted_insert AFTER INSERT ON outbox BEGIN
    UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
  END;
  CREATE TRIGGER outbox_counted_update AFTER UPDATE OF state ON outbox WHEN OLD.state <> NEW.state BEGIN
    UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE outbox_counts SET n = n + 1 WHERE state = NEW.state;
  END;
  CREATE TRIGGER outbox_counted_delete AFTER DELETE ON outbox BEGIN
    UPDATE outbox_counts SET n = n - 1 WHERE state = OLD.state;
  END;

  -- Highest rank delivered per msgId, so claimDue skips what CleverTap must no longer see without
  -- scanning delivered rows (which the sweep may already have removed).
  CREATE TABLE progress (
    tenant TEXT NOT NULL, msg_id TEXT NOT NULL, max_rank INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, msg_id)) WITHOUT ROWID;
  CREATE INDEX progress_expiry ON progress (expires_at);

  CREATE TABLE pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    event TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    mapping_version TEXT,
    first_seen_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_lookup_at INTEGER NOT NULL,
    unmatched INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX pending_due ON pending (next_lookup_at, id) WHERE unmatched = 0;
  CREATE INDEX pending_unmatched ON pending (id) WHERE unmatched = 1;
  `,
  // Implied statuses (a higher one arrived first): the flag on the callback, and per msgId the chain
  // ranks already in the outbox (bit 1 << rank), so each goes in once. What was queued before this
  // version counts as there; failed leaves the chain (rank 3 → 4).
  `
  ALTER TABLE outbox ADD COLUMN implied INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE progress ADD COLUMN covered INTEGER NOT NULL DEFAULT 0;
  UPDATE outbox SET rank = 4 WHERE kind = 'status' AND rank = 3 AND json_extract(payload, '$.status') = 'failed';
  INSERT INTO progress (tenant, msg_id, max_rank, expires_at, covered)
    SELECT tenant, msg_id, 0, CAST(strftime('%s', 'now') AS INTEGER) * 1000 + 604800000, sum(DISTINCT 1 << rank) FROM outbox
    WHERE kind = 'status' AND msg_id IS NOT NULL AND rank BETWEEN 1 AND 3 AND state <> 'skipped' GROUP BY tenant, msg_id
    ON CONFLICT (tenant, msg_id) DO UPDATE SET covered = excluded.covered;
  `,
  `
  -- Tracked links (docs/click-tracking.md): url is the only place /c/<token> redirects to.
  CREATE TABLE click_links (
    token TEXT PRIMARY KEY, tenant TEXT NOT NULL, msg_id TEXT NOT NULL, url TEXT NOT NULL,
    expires_at INTEGER NOT NULL, clicks INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
  CREATE INDEX click_links_expiry ON click_links (expires_at);
  `,
  // Webhooks the mapping could not map, acknowledged and kept for a replay (see docs/operations.md).
  `
  CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    mapping TEXT NOT NULL,
    mapping_version TEXT,
    request TEXT NOT NULL,
    part TEXT,
    error TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at INTEGER
  );
  CREATE INDEX quarantine_tenant ON quarantine (tenant, id);
  `,
  `
  -- Message timelines (docs/operations.md). Ids grow with time and the sweep removes the oldest first,
  -- so the live ids are one range and the size cap is a comparison with max(id), not a count.
  CREATE TABLE trace (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL, tenant TEXT NOT NULL, msg_id TEXT, provider_message_id TEXT, campaign TEXT,
    type TEXT NOT NULL, data TEXT NOT NULL);
  CREATE INDEX trace_msg ON trace (msg_id) WHERE msg_id IS NOT NULL;
  CREATE INDEX trace_provider ON trace (provider_message_id) WHERE provider_message_id IS NOT NULL;
  CREATE INDEX trace_campaign ON trace (campaign, at) WHERE campaign IS NOT NULL;
  CREATE INDEX trace_at ON trace (at);
  -- Campaigns by latest activity, for the list (grouping the trace table would read all of it).
  CREATE TABLE trace_campaigns (
    campaign TEXT NOT NULL, tenant TEXT NOT NULL, last_at INTEGER NOT NULL,
    PRIMARY KEY (campaign, tenant)) WITHOUT ROWID;
  CREATE INDEX trace_campaigns_recent ON trace_campaigns (last_at);
  `,
  `
  -- A trace event had three indexes on it (msgId, BSP id, time), two on random text keys: each cost a
  -- leaf write per event, 44 µs of the store thread per send event at 300,000 rows. Now integer keys: \`key\` = wab_trace_key(msgId, else the BSP
  -- id) on every event, and \`pair_key\` = wab_trace_key(BSP id) on an event that pairs a BSP id with a
  -- msgId when the store has not just written that pair (a message's statuses and callbacks carry it
  -- again): 17 µs per event, 28 µs for one that pairs. A timeline is found by either id; rows go oldest
  -- id first (ids follow time).
  ALTER TABLE trace ADD COLUMN key INTEGER;
  ALTER TABLE trace ADD COLUMN pair_key INTEGER;
  UPDATE trace SET key = wab_trace_key(coalesce(msg_id, provider_message_id)),
    pair_key = CASE WHEN msg_id IS NOT NULL THEN wab_trace_key(provider_message_id) END;
  DROP INDEX trace_msg;
  DROP INDEX trace_provider;
  DROP INDEX trace_at;
  CREATE INDEX trace_key ON trace (key) WHERE key IS NOT NULL;
  CREATE INDEX trace_pair_key ON trace (pair_key) WHERE pair_key IS NOT NULL;
  `,
];

/**
 * The message trace's own database (schema `tr`, in the file tracePathOf gives), by `PRAGMA
 * tr.user_version` like MIGRATIONS. Its own file because of what it writes: every event puts a leaf of
 * the key index at random into the WAL, 5-9 KB written per send event (WAL and checkpoint) at 100,000
 * to 300,000 rows, and in the store's file that all went to disk inside the fdatasync that every
 * acknowledgement waits for: the group commit took 45-60 ms (median) at -c 1500 instead of 16-20 with
 * the trace off. Here the trace's WAL is synced by its own checkpoints (synchronous=NORMAL: a power cut
 * may lose its last transactions, never a file that opens broken). Up to version 3 of MIGRATIONS the
 * trace lived in the store's file; openSqliteStore moves it here.
 */
export const TRACE_MIGRATIONS = [
  `
  CREATE TABLE tr.trace (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL, tenant TEXT NOT NULL, msg_id TEXT, provider_message_id TEXT, campaign TEXT,
    type TEXT NOT NULL, data TEXT NOT NULL, key INTEGER, pair_key INTEGER);
  CREATE INDEX tr.trace_key ON trace (key) WHERE key IS NOT NULL;
  CREATE INDEX tr.trace_pair_key ON trace (pair_key) WHERE pair_key IS NOT NULL;
  CREATE INDEX tr.trace_campaign ON trace (campaign, at) WHERE campaign IS NOT NULL;
  CREATE TABLE tr.trace_campaigns (
    campaign TEXT NOT NULL, tenant TEXT NOT NULL, last_at INTEGER NOT NULL,
    PRIMARY KEY (campaign, tenant)) WITHOUT ROWID;
  CREATE INDEX tr.trace_campaigns_recent ON trace_campaigns (last_at);
  `,
  // The key index by blocks of 4,096 ids (id >> 12) first: a block's entries are ~20 leaves, so a write of
  // 256 events dirties those leaves and not 256 leaves at random over the whole index (at 300,000 rows:
  // 19.4 -> 11.2 µs of CPU and 36 -> 12 µs of wall time per event, the same as no key index at all).
  // A look-up seeks each block (TRACE_BY_KEYS): ~1,200 blocks at the default 5,000,000 events.
  `
  DROP INDEX tr.trace_key;
  CREATE INDEX tr.trace_block_key ON trace ((id >> 12), key) WHERE key IS NOT NULL;
  `,
];

/** Where the trace of the store at `path` lives: `<path>-trace` beside it (in memory for ":memory:"). */
export function tracePathOf(path: string): string {
  if (path === ':memory:') return ':memory:';
  if (path.startsWith('file:')) {
    const q = path.indexOf('?');
    return q < 0 ? `${path}-trace` : `${path.slice(0, q)}-trace${path.slice(q)}`;
  }
  return `${path}-trace`;
}

/**
 * The trace's key for an id: 53 bits of two 32-bit FNV-1a variants, an exact integer in JavaScript,
 * JSON and SQLite. A collision only costs a row that the look-up then leaves out.
 */
export function traceKey(id: string): number {
  let a = 0x811c9dc5;
  let b = 0x5bd1e995;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x85ebca6b);
  }
  return (b >>> 0) * 0x200000 + ((a >>> 0) & 0x1fffff);
}

/** The SQL functions the migrations use (every connection that may run them registers them). */
export function registerSqlFunctions(db: Database.Database): void {
  db.function('wab_trace_key', { deterministic: true }, (id: unknown) => (typeof id === 'string' ? traceKey(id) : null));
}

interface OutboxRow {
  id: number;
  tenant: string;
  kind: 'status' | 'incoming';
  msg_id: string | null;
  rank: number;
  payload: string;
  dedupe_key: string;
  mapping_version: string | null;
  created_at: number;
  attempts: number;
  next_attempt_at: number;
  last_error: string | null;
  implied: number;
}

interface PendingRow {
  id: number;
  tenant: string;
  provider_message_id: string;
  event: string;
  dedupe_key: string;
  mapping_version: string | null;
  first_seen_at: number;
  attempts: number;
  next_lookup_at: number;
  unmatched: number;
}

function toCallback(r: OutboxRow): CallbackRecord {
  const rec: CallbackRecord = {
    id: String(r.id),
    tenant: r.tenant,
    kind: r.kind,
    rank: r.rank,
    payload: JSON.parse(r.payload) as unknown,
    dedupeKey: r.dedupe_key,
    createdAt: r.created_at,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
  };
  if (r.msg_id !== null) rec.msgId = r.msg_id;
  if (r.mapping_version !== null) rec.mappingVersion = r.mapping_version;
  if (r.last_error !== null) rec.lastError = r.last_error;
  if (r.implied === 1) rec.implied = true;
  return rec;
}

interface TraceRow {
  id: number;
  at: number;
  tenant: string;
  msg_id: string | null;
  provider_message_id: string | null;
  campaign: string | null;
  type: TraceEvent['type'];
  data: string;
}

function toTraceEvent(r: TraceRow): TraceEvent {
  const e: TraceEvent = { at: r.at, tenant: r.tenant, type: r.type, data: JSON.parse(r.data) as Record<string, unknown> };
  if (r.msg_id !== null) e.msgId = r.msg_id;
  if (r.provider_message_id !== null) e.providerMessageId = r.provider_message_id;
  if (r.campaign !== null) e.campaignId = r.campaign;
  return e;
}

function toPending(r: PendingRow): PendingRecord {
  const rec: PendingRecord = {
    id: String(r.id),
    tenant: r.tenant,
    providerMessageId: r.provider_message_id,
    event: JSON.parse(r.event) as StatusEvent,
    dedupeKey: r.dedupe_key,
    firstSeenAt: r.first_seen_at,
    attempts: r.attempts,
    nextLookupAt: r.next_lookup_at,
    unmatched: r.unmatched === 1,
  };
  if (r.mapping_version !== null) rec.mappingVersion = r.mapping_version;
  return rec;
}

interface QuarantineRow {
  id: number;
  tenant: string;
  mapping: string;
  mapping_version: string | null;
  request: string;
  part: string | null;
  error: string;
  received_at: number;
  attempts: number;
  last_attempt_at: number | null;
}

function toQuarantined(r: QuarantineRow): QuarantineRecord {
  const rec: QuarantineRecord = {
    id: String(r.id),
    tenant: r.tenant,
    mapping: r.mapping,
    request: JSON.parse(r.request) as QuarantineRecord['request'],
    error: JSON.parse(r.error) as QuarantineRecord['error'],
    receivedAt: r.received_at,
    attempts: r.attempts,
  };
  if (r.mapping_version !== null) rec.mappingVersion = r.mapping_version;
  if (r.part !== null) rec.part = JSON.parse(r.part) as QuarantineRecord['part'];
  if (r.last_attempt_at !== null) rec.lastAttemptAt = r.last_attempt_at;
  return rec;
}

/** Brings `schema` up to the last of `migrations`, by its PRAGMA user_version, in one transaction. */
function migrate(db: Database.Database, schema: 'main' | 'tr', migrations: readonly string[]): void {
  db.transaction(() => {
    const version = db.pragma(`${schema}.user_version`, { simple: true }) as number;
    for (let v = version; v < migrations.length; v++) {
      db.exec(migrations[v]!);
      db.pragma(`${schema}.user_version = ${v + 1}`);
    }
  }).immediate();
}

/** Attaches the trace's file as schema `tr`, creating or migrating it. */
function attachTrace(db: Database.Database, tracePath: string): void {
  db.prepare('ATTACH DATABASE ? AS tr').run(tracePath);
  db.pragma('tr.journal_mode = WAL');
  db.pragma('tr.synchronous = NORMAL');
  migrate(db, 'tr', TRACE_MIGRATIONS);
}

/**
 * A store from before the trace had a file of its own: its events are copied there (one transaction,
 * committed), then dropped from the store's file (another). A stop in between copies again, over what
 * is there already; the store's file is then vacuumed to give the space back. Measured: 7.6 s per million events, once.
 */
function moveTrace(db: Database.Database): void {
  if (db.prepare(`SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'trace'`).get() === undefined) return;
  db.transaction(() => {
    db.exec(`INSERT OR IGNORE INTO tr.trace (id, at, tenant, msg_id, provider_message_id, campaign, type, data, key, pair_key)
        SELECT id, at, tenant, msg_id, provider_message_id, campaign, type, data, key, pair_key FROM main.trace ORDER BY id;
      INSERT INTO tr.trace_campaigns (campaign, tenant, last_at) SELECT campaign, tenant, last_at FROM main.trace_campaigns WHERE true
        ON CONFLICT (campaign, tenant) DO UPDATE SET last_at = max(last_at, excluded.last_at);`);
  }).immediate();
  db.transaction(() => db.exec('DROP TABLE main.trace; DROP TABLE main.trace_campaigns;')).immediate();
  db.exec('VACUUM main');
}

/** Opens (creating when absent) a SQLite store; ":memory:" gives a private in-memory one. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  const plainFile = path !== ':memory:' && !path.startsWith('file:');
  if (plainFile) mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, options.onStatement ? { verbose: (sql) => options.onStatement!(String(sql)) } : {});
  db.pragma('journal_mode = WAL');
  const full = (options.synchronous ?? 'FULL') === 'FULL';
  db.pragma(`synchronous = ${full ? 'FULL' : 'NORMAL'}`);
  // Another process (the CLI, a second worker) may hold the write lock briefly: wait, do not fail.
  db.pragma('busy_timeout = 5000');
  const part = options.part ?? 'all';
  if (part === 'trace') {
    attachTrace(db, tracePathOf(path));
  } else {
    registerSqlFunctions(db);
    migrate(db, 'main', MIGRATIONS);
    attachTrace(db, tracePathOf(path));
    moveTrace(db);
    if (part === 'store') db.exec('DETACH DATABASE tr');
  }
  // The WAL exists from the first transaction on and stays while this connection is open (SQLite
  // removes it only when the last connection closes). A database named by URI, or one whose WAL is
  // not where it should be, keeps SQLite's own sync at commit.
  let walFd: number | undefined;
  if (full && plainFile && part !== 'trace' && existsSync(`${path}-wal`)) {
    walFd = openSync(`${path}-wal`, 'r+');
    db.pragma('synchronous = NORMAL');
  }
  const syncWal = options.syncWal ?? ((fd: number) => new Promise<void>((resolve, reject) => fdatasync(fd, (e) => (e ? reject(e) : resolve()))));
  return new SqliteStore(db, options.dedupeTtlMs ?? 7 * DAY, options.clock ?? Date.now, walFd, syncWal, part !== 'store');
}

// The head of a msgId's queue is its pending callback of lowest (rank, created_at, id); only a
// due, unleased head may go, and only while no other callback of that msgId is leased (in flight).
// Rank 0 (incoming, clicks) is unordered: it neither waits nor holds anything up. Exported for the
// query-plan test.
export const CLAIMABLE_SQL = `SELECT o.*, g.max_rank FROM outbox o
  LEFT JOIN progress g ON o.rank > 0 AND g.tenant = o.tenant AND g.msg_id = o.msg_id
  WHERE o.state = 'pending' AND o.next_attempt_at <= @now AND o.lease_until <= @now
    AND (o.rank = 0 OR o.msg_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM outbox b WHERE b.state = 'pending' AND b.rank > 0 AND b.tenant = o.tenant AND b.msg_id = o.msg_id
        AND b.id <> o.id AND ((b.rank, b.created_at, b.id) < (o.rank, o.created_at, o.id) OR b.lease_until > @now)))
  ORDER BY o.next_attempt_at, o.id LIMIT @limit`;

function prepare(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    saveCorrelation: p(`INSERT INTO correlations (tenant, provider_message_id, msg_id, expires_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (tenant, provider_message_id) DO UPDATE SET msg_id = excluded.msg_id, expires_at = excluded.expires_at`),
    // A batch of ids as one JSON array: one statement, each id a look-up in the primary key.
    findMsgIds: p(`SELECT provider_message_id AS id, msg_id AS msgId FROM correlations
      WHERE tenant = ? AND provider_message_id IN (SELECT value FROM json_each(?)) AND expires_at > ?`),
    // Inserts a key, or revives one that expired but was not swept yet; changes = 0 means duplicate.
    dedupe: p(`INSERT INTO dedupe (key, expires_at) VALUES (@key, @expires)
      ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE dedupe.expires_at <= @now`),
    insertCallback: p(`INSERT INTO outbox (tenant, kind, msg_id, rank, payload, dedupe_key, mapping_version, created_at, next_attempt_at, implied)
      VALUES (@tenant, @kind, @msgId, @rank, @payload, @dedupeKey, @mappingVersion, @now, @now, @implied)`),
    // Takes a chain rank of a msgId (bit 1 << rank of `covered`, the ranks already in the outbox) in
    // one statement: changes = 0 when the rank was there already. Check and mark were a SELECT and an
    // upsert; the upsert's WHERE does both. (Expired but not swept yet: forgotten, as dedupe keys are.)
    cover: p(`INSERT INTO progress (tenant, msg_id, max_rank, expires_at, covered) VALUES (@tenant, @msgId, 0, @expires, @bit)
      ON CONFLICT (tenant, msg_id) DO UPDATE SET covered = (CASE WHEN expires_at <= @now THEN 0 ELSE covered END) | excluded.covered,
        expires_at = max(expires_at, excluded.expires_at)
      WHERE expires_at <= @now OR (covered & excluded.covered) = 0`),
    insertPending: p(`INSERT INTO pending (tenant, provider_message_id, event, dedupe_key, mapping_version, first_seen_at, next_lookup_at)
      VALUES (@tenant, @providerMessageId, @event, @dedupeKey, @mappingVersion, @now, @now)`),
    duePending: p(`SELECT * FROM pending WHERE unmatched = 0 AND next_lookup_at <= ? ORDER BY next_lookup_at, id LIMIT ?`),
    deletePending: p(`DELETE FROM pending WHERE id = ?`),
    reschedulePending: p(`UPDATE pending SET next_lookup_at = ?, unmatched = ?, attempts = attempts + 1 WHERE id = ?`),
    listUnmatched: p(`SELECT * FROM pending WHERE unmatched = 1 ORDER BY id LIMIT ?`),
    claimable: p(CLAIMABLE_SQL),
    // Set-based over a JSON array of ids: one statement for a round's rows instead of one per row.
    leaseAll: p(`UPDATE outbox SET lease_until = ? WHERE id IN (SELECT value FROM json_each(?))`),
    skip: p(`UPDATE outbox SET state = 'skipped', delivered_at = ?, lease_until = 0 WHERE id = ?`),
    deliveredAll: p(`UPDATE outbox SET state = 'delivered', delivered_at = ?, lease_until = 0 WHERE id IN (SELECT value FROM json_each(?))`),
    // The highest chain rank delivered per msgId among those ids, kept as that msgId's progress.
    progressAll: p(`INSERT INTO progress (tenant, msg_id, max_rank, expires_at)
      SELECT tenant, msg_id, max(rank), ? FROM outbox WHERE id IN (SELECT value FROM json_each(?)) AND rank BETWEEN 1 AND ${CHAIN_TOP} AND msg_id IS NOT NULL GROUP BY tenant, msg_id
      ON CONFLICT (tenant, msg_id) DO UPDATE SET max_rank = max(max_rank, excluded.max_rank), expires_at = excluded.expires_at`),
    failed: p(`UPDATE outbox SET attempts = attempts + 1, last_error = @error, next_attempt_at = @next, lease_until = 0
      WHERE id = @id AND state = 'pending' RETURNING tenant, msg_id, rank`),
    // The rest of that msgId's queue cannot go before its head anyway; making it not due keeps it out
    // of claimDue's scan, which otherwise grows with every msgId waiting on a retry (CleverTap down).
    holdFollowers: p(`UPDATE outbox SET next_attempt_at = @next
      WHERE state = 'pending' AND rank > 0 AND tenant = @tenant AND msg_id = @msgId AND id <> @id AND next_attempt_at < @next`),
    dead: p(`UPDATE outbox SET state = 'dead', last_error = ?, lease_until = 0 WHERE id = ? AND state = 'pending'`),
    listDead: p(`SELECT * FROM outbox WHERE state = 'dead' ORDER BY id LIMIT ?`),
    listDeadOf: p(`SELECT * FROM outbox WHERE state = 'dead' AND tenant = ? ORDER BY id LIMIT ?`),
    // A replayed callback gets a fresh retry window: createdAt becomes the time it re-entered.
    replayOne: p(`UPDATE outbox SET state = 'pending', attempts = 0, created_at = @now, next_attempt_at = @now, lease_until = 0
      WHERE id = @id AND state = 'dead'`),
    replayAll: p(`UPDATE outbox SET state = 'pending', attempts = 0, created_at = @now, next_attempt_at = @now, lease_until = 0
      WHERE state = 'dead'`),
    saveClickLink: p(`INSERT INTO click_links (token, tenant, msg_id, url, expires_at) VALUES (@token, @tenant, @msgId, @url, @expiresAt)`),
    findClickLink: p(`SELECT token, tenant, msg_id AS msgId, url, expires_at AS expiresAt FROM click_links WHERE token = ? AND expires_at > ?`),
    countClick: p(`UPDATE click_links SET clicks = clicks + 1 WHERE token = ? AND expires_at > ? RETURNING clicks`).pluck(),
    sweepClickLinks: p(`DELETE FROM click_links WHERE expires_at <= ?`),
    sweepCorrelations: p(`DELETE FROM correlations WHERE expires_at <= ?`),
    sweepDedupe: p(`DELETE FROM dedupe WHERE expires_at <= ?`),
    sweepProgress: p(`DELETE FROM progress WHERE expires_at <= ?`),
    sweepDone: p(`DELETE FROM outbox WHERE state IN ('delivered', 'skipped') AND delivered_at < ?`),
    countOutbox: p(`SELECT state, n FROM outbox_counts`),
    countLookups: p(`SELECT count(*) FROM pending WHERE unmatched = 0`).pluck(),
    countUnmatched: p(`SELECT count(*) FROM pending WHERE unmatched = 1`).pluck(),
    ping: p(`SELECT 1`).pluck(),
    addQuarantined: p(`INSERT INTO quarantine (tenant, mapping, mapping_version, request, part, error, received_at)
      VALUES (@tenant, @mapping, @mappingVersion, @request, @part, @error, @now) RETURNING id`).pluck(),
    listQuarantined: p(`SELECT * FROM quarantine ORDER BY id LIMIT ?`),
    listQuarantinedOf: p(`SELECT * FROM quarantine WHERE tenant = ? ORDER BY id LIMIT ?`),
    getQuarantined: p(`SELECT * FROM quarantine WHERE id = ?`),
    requarantine: p(`UPDATE quarantine SET error = @error, mapping_version = @mappingVersion, attempts = attempts + 1, last_attempt_at = @now WHERE id = @id`),
    removeQuarantined: p(`DELETE FROM quarantine WHERE id = ?`),
    quarantineSize: p(`SELECT count(*) FROM quarantine`).pluck(),
  };
}

type Statements = ReturnType<typeof prepare>;

/**
 * The trace rows of the keys in JSON array @keys: one seek of TRACE_MIGRATIONS' key index per block of
 * ids (every block from the oldest row's to the newest's) and key. Callers add conditions and the order.
 */
const TRACE_BY_KEYS = `WITH RECURSIVE blocks(b) AS (SELECT (SELECT min(id) FROM tr.trace) >> 12
    UNION ALL SELECT b + 1 FROM blocks WHERE b < (SELECT max(id) FROM tr.trace) >> 12)
  SELECT * FROM tr.trace WHERE (id >> 12) IN (SELECT b FROM blocks) AND key IN (SELECT value FROM json_each(@keys))`;

/** The trace's statements: on its file (schema tr), and the correlations for a look-up by BSP id. */
function prepareTrace(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    insertTrace: p(`INSERT INTO tr.trace (at, tenant, key, pair_key, msg_id, provider_message_id, campaign, type, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    // The msgIds paired with these BSP ids (the keys; a collision's msgId is told apart by the caller).
    tracePairs: p(`SELECT DISTINCT msg_id, provider_message_id FROM tr.trace WHERE pair_key IN (SELECT value FROM json_each(?))`),
    // The same from the correlations, whatever their tenant: each tenant found with one seek of the
    // primary key (SQLite's loose index scan), then one seek per id in each.
    correlatedPairs: p(`WITH RECURSIVE t(tenant) AS (SELECT min(tenant) FROM correlations
        UNION ALL SELECT (SELECT min(tenant) FROM correlations WHERE tenant > t.tenant) FROM t WHERE t.tenant IS NOT NULL)
      SELECT c.msg_id, c.provider_message_id FROM t JOIN correlations c
        ON c.tenant = t.tenant AND c.provider_message_id IN (SELECT value FROM json_each(?))`),
    touchCampaign: p(`INSERT INTO tr.trace_campaigns (campaign, tenant, last_at) VALUES (?, ?, ?)
      ON CONFLICT (campaign, tenant) DO UPDATE SET last_at = max(last_at, excluded.last_at)`),
    campaignTrace: p(`SELECT * FROM tr.trace WHERE campaign = @campaign AND (at, id) > (@at, @id) ORDER BY at, id LIMIT @limit`),
    // No index on (campaign, msg_id): it would cost every trace write; the drill-down is an operator's look.
    campaignMsgIds: p(`SELECT DISTINCT msg_id FROM tr.trace WHERE campaign = @campaign AND msg_id > @after ORDER BY msg_id LIMIT @limit`).pluck(),
    // (+campaign: by the key index, not by reading all of the campaign's events)
    campaignMsgEvents: p(`${TRACE_BY_KEYS} AND +campaign = @campaign ORDER BY at, id`),
    listCampaigns: p(`SELECT campaign AS campaignId, tenant, last_at AS lastActivity FROM tr.trace_campaigns ORDER BY last_at DESC LIMIT ?`),
    sweepCampaigns: p(`DELETE FROM tr.trace_campaigns WHERE last_at < ?`),
    traceOf: p(`${TRACE_BY_KEYS} ORDER BY at, id LIMIT @limit`),
    // Ids follow time: what is older than keep is the rows before the first one that is not (found by
    // reading the old rows once, in id order), removed in batches so one sweep after a long pause does
    // not hold the write lock for seconds.
    traceKeptFrom: p(`SELECT id FROM tr.trace WHERE at >= ? ORDER BY id LIMIT 1`).pluck(),
    sweepTraceBefore: p(`DELETE FROM tr.trace WHERE id < min(?, (SELECT min(id) FROM tr.trace) + 10000)`),
    sweepTraceOver: p(`DELETE FROM tr.trace WHERE id IN (SELECT id FROM tr.trace WHERE id <= (SELECT max(id) FROM tr.trace) - ? ORDER BY id LIMIT 10000)`),
  };
}

type TraceStatements = ReturnType<typeof prepareTrace>;

/**
 * Trace rows per transaction of their own (appendTrace). Each row dirties a leaf of the key index at
 * random; a bigger transaction writes a leaf it dirtied twice once: 256 rows took 11.4 µs per send
 * event against 14.5 for 64 (100,000 rows), and hold the thread ~3 ms, not long for a group commit.
 */
const TRACE_CHUNK = 256;
/**
 * BSP ids whose pairing with a msgId was written lately (pairs the correlations do not hold): a
 * message's statuses carry the pair again and need no pair_key of their own. (Forgotten, or after a
 * restart, a pair is written again: harmless.) Two generations, the older dropped whole: a Map that
 * evicts its oldest key one by one keeps the deleted entries until it rehashes, and finding the first
 * live one grew to 45 µs per event past 100,000 pairs.
 */
const PAIRS_REMEMBERED = 100_000;

/** Thrown out of a group commit's first, all-or-nothing run when one of its writes fails. */
const WRITE_FAILED = Symbol('a write failed');

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private closed = false;

  // Prepared once: preparing is most of the cost of a small statement.
  private readonly s: Statements;
  private readonly traceStatements: TraceStatements | undefined;
  /** BSP id → msgId of the trace pairs written lately (PAIRS_REMEMBERED): this generation, the one before. */
  private tracePaired = new Map<string, string>();
  private tracePairedBefore = new Map<string, string>();

  constructor(
    private readonly db: Database.Database,
    private readonly dedupeTtlMs: number,
    private readonly clock: () => number,
    /** The WAL's descriptor when this store syncs it (see the top of this file); undefined: SQLite does. */
    private readonly walFd: number | undefined,
    private readonly syncWal: (fd: number) => Promise<void>,
    traced: boolean,
  ) {
    this.s = prepare(db);
    if (traced) this.traceStatements = prepareTrace(db);
    // Made once: each db.transaction() call builds four wrapper functions (about 4.5 µs), which a
    // commit of one row (a message at low load) would otherwise pay every time.
    const run = db.transaction((work: () => unknown) => work());
    this.immediate = run.immediate as <T>(work: () => T) => T;
    this.nested = run as <T>(work: () => T) => T;
    this.traceWrite = run.deferred as <T>(work: () => T) => T;
  }

  /**
   * Runs a trace write: DEFERRED, so the write lock taken is the trace file's alone (its first
   * statement writes; nothing is read before it that another writer could change).
   */
  private readonly traceWrite: <T>(work: () => T) => T;

  private get t(): TraceStatements {
    if (!this.traceStatements) throw new Error('this connection does not serve the trace (part: store)');
    return this.traceStatements;
  }

  /** Runs `work` in an IMMEDIATE transaction: the write lock is taken up front. */
  private readonly immediate: <T>(work: () => T) => T;
  /** Runs `work` in a savepoint of the transaction in progress, undone alone if it throws. */
  private readonly nested: <T>(work: () => T) => T;

  private syncing: Promise<void> | undefined;
  private nextSync: Promise<void> | undefined;
  /** A commit was made since the last sync began. */
  private unsynced = false;
  /** Set by a failed WAL sync. The kernel may have dropped the unwritten pages, so a later sync that succeeds proves nothing: every write from then on fails. */
  private syncFailure: Error | undefined;

  /** Resolves once every commit made before the call is on disk. */
  private durable(): Promise<void> {
    if (this.walFd === undefined) return Promise.resolve();
    if (this.syncFailure) return Promise.reject(this.syncFailure);
    if (!this.unsynced) return this.syncing ?? Promise.resolve();
    // A sync in flight may have begun before this commit: the next one begins when it ends, and every
    // commit made until then shares it.
    return (this.nextSync ??= (this.syncing ?? Promise.resolve()).catch(() => undefined).then(() => this.sync()));
  }

  /** durable(), for a commit just made. */
  private committed(): Promise<void> {
    this.unsynced = true;
    return this.durable();
  }

  private sync(): Promise<void> {
    this.nextSync = undefined;
    if (this.syncFailure) return Promise.reject(this.syncFailure);
    this.unsynced = false;
    const running: Promise<void> = this.syncWal(this.walFd!)
      .catch((e: Error) => {
        this.syncFailure ??= new Error(`SQLite store: syncing the write-ahead log to disk failed (${e.message}); writes since the last sync may be lost, restart wabridge`);
        throw this.syncFailure;
      })
      .finally(() => {
        if (this.syncing === running) this.syncing = undefined;
      });
    return (this.syncing = running);
  }

  /** Runs a write transaction now and resolves when it is on disk. */
  private async write<T>(tx: () => T): Promise<T> {
    if (this.syncFailure) throw this.syncFailure;
    const value = this.immediate(tx);
    await this.committed();
    return value;
  }

  private readonly ingestTx = (items: { callbacks: NewCallback[]; pending: NewPending[] }, now: number): IngestResult => {
    let accepted = 0;
    let duplicates = 0;
    const expires = now + this.dedupeTtlMs;
    const fresh = (key: string) => this.s.dedupe.run({ key, expires, now }).changes === 1;
    const real = this.addCallbacks(items.callbacks, now, fresh);
    for (const p of items.pending) {
      if (!fresh(p.dedupeKey)) {
        duplicates++;
        continue;
      }
      this.s.insertPending.run({
        tenant: p.tenant,
        providerMessageId: p.providerMessageId,
        event: JSON.stringify(p.event),
        dedupeKey: p.dedupeKey,
        mappingVersion: p.mappingVersion ?? null,
        now,
      });
      accepted++;
    }
    return { accepted: accepted + real.accepted, duplicates: duplicates + real.duplicates, implied: real.implied };
  };

  /**
   * Ingest's rules for callbacks (store.ts): real ones first, each past its dedupe key when `fresh`
   * is given, then a chain rank at most once per msgId; implied ones only where their rank is missing.
   */
  private addCallbacks(callbacks: readonly NewCallback[], now: number, fresh?: (key: string) => boolean): IngestResult {
    const counts = { accepted: 0, duplicates: 0, implied: 0 };
    const expires = now + this.dedupeTtlMs;
    const take = (c: NewCallback): boolean => {
      const chain = c.msgId !== undefined && c.kind === 'status' && c.rank >= 1 && c.rank <= CHAIN_TOP;
      if (chain) {
        if (this.s.cover.run({ tenant: c.tenant, msgId: c.msgId, expires, bit: 1 << c.rank, now }).changes === 0) return false;
      }
      this.s.insertCallback.run(this.callbackParams(c, now));
      return true;
    };
    for (const c of callbacks) {
      if (c.implied) continue;
      if (fresh && !fresh(c.dedupeKey)) counts.duplicates++;
      else if (take(c)) counts.accepted++;
      else counts.duplicates++;
    }
    for (const c of callbacks) if (c.implied && take(c)) counts.implied++;
    return counts;
  }

  private callbackParams(c: NewCallback, now: number) {
    return {
      tenant: c.tenant,
      kind: c.kind,
      msgId: c.msgId ?? null,
      rank: c.rank,
      payload: JSON.stringify(c.payload),
      dedupeKey: c.dedupeKey,
      mappingVersion: c.mappingVersion ?? null,
      implied: c.implied ? 1 : 0,
      now,
    };
  }

  // Group commit: writes that must be durable before their caller answers (a send's correlation, a
  // webhook's events) queue here and commit together at the next turn of the event loop, one fsync
  // for all of them. One failing write must not undo the others: the batch first runs as one plain
  // transaction, and only if a write in it throws is it rolled back and run again with each write in
  // a savepoint of its own, where the failing one is undone alone. Writes fail next to never, and a
  // savepoint per write (SAVEPOINT and RELEASE cost more than a correlation insert) made the commit
  // take twice the CPU: 110 against 62 µs per correlation, measured in flushes under load.
  private queue: { work: () => unknown; resolve: (v: never) => void; reject: (e: unknown) => void }[] = [];
  private flushScheduled = false;

  private commit<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (v: never) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    if (this.syncFailure) {
      for (const item of batch) item.reject(this.syncFailure);
      return;
    }
    let results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[];
    try {
      results = this.commitBatch(batch);
    } catch (error) {
      // A failure of the transaction itself (the write lock, the commit): nothing of the batch is kept.
      for (const item of batch) item.reject(error);
      return;
    }
    const synced = this.committed();
    synced.catch(() => undefined); // (each writer hears of a failure through its own handler below)
    batch.forEach((item, i) => {
      const r = results[i]!;
      if (r.ok) synced.then(() => item.resolve(r.value as never), item.reject);
      else item.reject(r.error);
    });
  }

  private commitBatch(batch: { work: () => unknown }[]): ({ ok: true; value: unknown } | { ok: false; error: unknown })[] {
    try {
      const values: unknown[] = [];
      this.immediate(() => {
        for (const item of batch) {
          try {
            values.push(item.work());
          } catch {
            throw WRITE_FAILED; // rolls the whole batch back
          }
        }
      });
      return values.map((value) => ({ ok: true, value }));
    } catch (e) {
      if (e !== WRITE_FAILED) throw e;
    }
    const results: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    this.immediate(() => {
      for (const item of batch) {
        try {
          results.push({ ok: true, value: this.nested(item.work) });
        } catch (error) {
          results.push({ ok: false, error });
        }
      }
    });
    return results;
  }

  async saveCorrelation(tenant: string, providerMessageId: string, msgId: string, ttlMs: number): Promise<void> {
    const expires = this.clock() + ttlMs;
    await this.commit(() => this.s.saveCorrelation.run(tenant, providerMessageId, msgId, expires));
  }

  async findMsgIds(tenant: string, providerMessageIds: readonly string[]): Promise<(string | undefined)[]> {
    if (providerMessageIds.length === 0) return [];
    const rows = this.s.findMsgIds.all(tenant, JSON.stringify(providerMessageIds), this.clock()) as { id: string; msgId: string }[];
    const found = new Map(rows.map((r) => [r.id, r.msgId]));
    return providerMessageIds.map((id) => found.get(id));
  }

  async ingest(items: { callbacks: NewCallback[]; pending: NewPending[] }, now: number): Promise<IngestResult> {
    // Committed with the other writes of this turn (IMMEDIATE: the write lock is taken up front, so a
    // concurrent writer waits for busy_timeout instead of failing half-way on lock upgrade).
    return this.commit(() => this.ingestTx(items, now));
  }

  async duePending(now: number, limit: number): Promise<PendingRecord[]> {
    return (this.s.duePending.all(now, limit) as PendingRow[]).map(toPending);
  }

  // The look-ups' and the outbox's writes below join the group commit: a round of them (the resolver
  // and the delivery worker issue a round's writes at once) costs one transaction and one sync.
  async resolvePending(id: string, callbacks: readonly NewCallback[], now: number): Promise<void> {
    await this.commit(() => {
      // The dedupe key was recorded when the pending status was ingested; a second resolver that
      // lost the race finds the row gone and adds nothing.
      if (this.s.deletePending.run(Number(id)).changes === 1) this.addCallbacks(callbacks, now);
    });
  }

  async reschedulePending(id: string, nextLookupAt: number, unmatched: boolean): Promise<void> {
    await this.commit(() => this.s.reschedulePending.run(nextLookupAt, unmatched ? 1 : 0, Number(id)));
  }

  async listUnmatched(limit: number): Promise<PendingRecord[]> {
    return (this.s.listUnmatched.all(limit) as PendingRow[]).map(toPending);
  }

  async claimDue(now: number, limit: number, leaseMs: number): Promise<CallbackRecord[]> {
    // A lease lost in a power cut only means the callback is claimed again: no wait for the disk.
    if (this.syncFailure) throw this.syncFailure;
    return this.immediate(() => {
      const out: CallbackRecord[] = [];
      // Skipping a head exposes the next callback of its msgId, so look again until nothing is skipped.
      for (;;) {
        const rows = this.s.claimable.all({ now, limit: limit - out.length }) as (OutboxRow & { max_rank: number | null })[];
        let skipped = 0;
        const leased: number[] = [];
        for (const r of rows) {
          if (r.rank > 0 && r.max_rank !== null && r.rank < r.max_rank) {
            this.s.skip.run(now, r.id);
            skipped++;
          } else {
            leased.push(r.id);
            out.push(toCallback(r));
          }
        }
        if (leased.length > 0) this.s.leaseAll.run(now + leaseMs, JSON.stringify(leased));
        if (skipped === 0 || out.length >= limit) return out;
      }
    });
  }

  async markDelivered(ids: readonly string[], now: number): Promise<void> {
    const list = JSON.stringify(ids.map(Number));
    await this.commit(() => {
      this.s.deliveredAll.run(now, list);
      this.s.progressAll.run(now + this.dedupeTtlMs, list);
    });
  }

  async markFailed(ids: readonly string[], error: string, nextAttemptAt: number): Promise<void> {
    await this.commit(() => {
      for (const id of ids) {
        const r = this.s.failed.get({ error, next: nextAttemptAt, id: Number(id) }) as { tenant: string; msg_id: string | null; rank: number } | undefined;
        if (r && r.rank > 0 && r.msg_id !== null) this.s.holdFollowers.run({ next: nextAttemptAt, tenant: r.tenant, msgId: r.msg_id, id: Number(id) });
      }
    });
  }

  async markDead(ids: readonly string[], error: string): Promise<void> {
    await this.commit(() => ids.forEach((id) => this.s.dead.run(error, Number(id))));
  }

  async listDead(limit: number, tenant?: string): Promise<CallbackRecord[]> {
    const rows = tenant === undefined ? this.s.listDead.all(limit) : this.s.listDeadOf.all(tenant, limit);
    return (rows as OutboxRow[]).map(toCallback);
  }

  async replayDead(now: number, ids?: readonly string[]): Promise<number> {
    if (ids === undefined) return this.write(() => this.s.replayAll.run({ now }).changes);
    return this.write(() => ids.reduce((n, id) => n + this.s.replayOne.run({ now, id: Number(id) }).changes, 0));
  }

  async addQuarantined(entries: readonly NewQuarantined[], now: number): Promise<string[]> {
    // Serialised here: an entry that is not JSON throws before anything is written.
    const rows = entries.map((e) => ({
      tenant: e.tenant,
      mapping: e.mapping,
      mappingVersion: e.mappingVersion ?? null,
      request: JSON.stringify(e.request),
      part: e.part ? JSON.stringify(e.part) : null,
      error: JSON.stringify(e.error),
      now,
    }));
    return this.commit(() => rows.map((r) => String(this.s.addQuarantined.get(r) as number)));
  }

  async listQuarantined(limit: number, tenant?: string): Promise<QuarantineRecord[]> {
    const rows = tenant === undefined ? this.s.listQuarantined.all(limit) : this.s.listQuarantinedOf.all(tenant, limit);
    return (rows as QuarantineRow[]).map(toQuarantined);
  }

  async getQuarantined(id: string): Promise<QuarantineRecord | undefined> {
    if (!/^\d+$/.test(id)) return undefined;
    const row = this.s.getQuarantined.get(Number(id)) as QuarantineRow | undefined;
    return row && toQuarantined(row);
  }

  async requarantine(id: string, error: NewQuarantined['error'], mappingVersion: string | undefined, now: number): Promise<boolean> {
    if (!/^\d+$/.test(id)) return false;
    const changes = await this.write(() => this.s.requarantine.run({ id: Number(id), error: JSON.stringify(error), mappingVersion: mappingVersion ?? null, now }).changes);
    return changes === 1;
  }

  async removeQuarantined(ids: readonly string[]): Promise<number> {
    const valid = ids.filter((id) => /^\d+$/.test(id));
    if (valid.length === 0) return 0;
    return this.write(() => valid.reduce((n, id) => n + this.s.removeQuarantined.run(Number(id)).changes, 0));
  }

  async quarantineSize(): Promise<number> {
    return this.s.quarantineSize.get() as number;
  }

  async sweep(now: number, keepMs: number): Promise<void> {
    // Nothing is lost if a sweep is: the next one deletes the same rows.
    if (this.syncFailure) throw this.syncFailure;
    this.immediate(() => {
      this.s.sweepCorrelations.run(now);
      this.s.sweepDedupe.run(now);
      this.s.sweepProgress.run(now);
      this.s.sweepClickLinks.run(now);
      this.s.sweepDone.run(now - keepMs);
    });
  }

  // In the trace's own file (TRACE_MIGRATIONS: never in the sync a group commit waits for), in
  // transactions of their own, TRACE_CHUNK rows at a time with a turn between, so other calls to this
  // connection go first. Serialized here (on SQLite's thread, not the host's event loop), all before
  // the first commit: data that cannot be (a BigInt, a cycle) fails this call alone.
  // A pair the correlations hold (a send's, a status found by its BSP id) gets no pair_key: readTrace
  // finds it there, and a send event is written with one random index leaf instead of two (16 -> 11
  // µs, 100,000 rows).
  async appendTrace(events: readonly TraceEvent[], _keepMs: number): Promise<void> {
    const rows = events.map((e) => {
      const id = e.msgId ?? e.providerMessageId;
      const pairs = e.msgId !== undefined && e.providerMessageId !== undefined && e.correlated !== true;
      return [e.at, e.tenant, id === undefined ? null : traceKey(id), pairs, e.msgId ?? null, e.providerMessageId ?? null, e.campaignId ?? null, e.type, JSON.stringify(e.data)] as const;
    });
    for (let i = 0; i < events.length; i += TRACE_CHUNK) {
      if (this.syncFailure) throw this.syncFailure;
      if (i > 0) await new Promise((r) => setImmediate(r));
      const chunk = rows.slice(i, i + TRACE_CHUNK);
      const campaigns = new Map<string, [string, string, number]>();
      for (const e of events.slice(i, i + TRACE_CHUNK)) {
        if (e.campaignId === undefined) continue;
        const key = `${e.campaignId}|${e.tenant}`;
        if ((campaigns.get(key)?.[2] ?? -Infinity) < e.at) campaigns.set(key, [e.campaignId, e.tenant, e.at]);
      }
      this.traceWrite(() => {
        for (const [at, tenant, key, pairs, msgId, providerMessageId, campaignId, type, data] of chunk) {
          let pairKey: number | null = null;
          if (pairs && !this.pairWritten(providerMessageId!, msgId!)) pairKey = traceKey(providerMessageId!);
          this.t.insertTrace.run(at, tenant, key, pairKey, msgId, providerMessageId, campaignId, type, data);
        }
        for (const c of campaigns.values()) this.t.touchCampaign.run(...c);
      });
    }
  }

  /** Whether this pair's pair_key was written lately; remembers it from now on. */
  private pairWritten(providerMessageId: string, msgId: string): boolean {
    if (this.tracePaired.get(providerMessageId) === msgId) return true;
    const before = this.tracePairedBefore.get(providerMessageId) === msgId;
    if (this.tracePaired.size >= PAIRS_REMEMBERED / 2) {
      this.tracePairedBefore = this.tracePaired;
      this.tracePaired = new Map();
    }
    this.tracePaired.set(providerMessageId, msgId);
    return before;
  }

  async readTrace(id: string, limit: number): Promise<TraceEvent[]> {
    // The id may be either kind, and each event brings the ids it links: follow them until none is new.
    const msgIds = new Set([id]);
    const ids = new Set([id]);
    for (let round = 0; ; round++) {
      const pairs = this.t.tracePairs.all(JSON.stringify([...ids].map(traceKey))) as { msg_id: string; provider_message_id: string }[];
      pairs.push(...(this.t.correlatedPairs.all(JSON.stringify([...ids])) as typeof pairs));
      for (const p of pairs) if (ids.has(p.provider_message_id)) msgIds.add(p.msg_id);
      const keys = new Set<number>();
      for (const x of msgIds) keys.add(traceKey(x));
      for (const x of ids) keys.add(traceKey(x));
      const rows = (this.t.traceOf.all({ keys: JSON.stringify([...keys]), limit }) as TraceRow[]).filter(
        (r) => (r.msg_id !== null && msgIds.has(r.msg_id)) || (r.provider_message_id !== null && ids.has(r.provider_message_id)),
      );
      const before = msgIds.size + ids.size;
      for (const r of rows) {
        if (r.msg_id !== null) msgIds.add(r.msg_id);
        if (r.provider_message_id !== null) ids.add(r.provider_message_id);
      }
      if (msgIds.size + ids.size === before || round === 3) return rows.map(toTraceEvent);
    }
  }

  async sweepTrace(now: number, keepMs: number, maxEvents: number): Promise<number> {
    if (this.syncFailure) throw this.syncFailure;
    let removed = 0;
    this.traceWrite(() => this.t.sweepCampaigns.run(now - keepMs));
    const keptFrom = (this.t.traceKeptFrom.get(now - keepMs) as number | undefined) ?? Number.MAX_SAFE_INTEGER;
    for (;;) {
      const n = this.traceWrite(() => this.t.sweepTraceBefore.run(keptFrom).changes);
      removed += n;
      if (n === 0) break;
    }
    for (;;) {
      const n = this.traceWrite(() => this.t.sweepTraceOver.run(maxEvents).changes);
      removed += n;
      if (n < 10_000) break;
    }
    return removed;
  }

  async campaignTrace(campaignId: string, limit: number, cursor?: string): Promise<{ events: TraceEvent[]; next?: string }> {
    const [at, id] = (cursor ?? '-1:0').split(':').map(Number) as [number, number];
    const rows = this.t.campaignTrace.all({ campaign: campaignId, at, id, limit }) as TraceRow[];
    const last = rows[rows.length - 1];
    const page: { events: TraceEvent[]; next?: string } = { events: rows.map(toTraceEvent) };
    if (last && rows.length === limit) page.next = `${last.at}:${last.id}`;
    return page;
  }

  async campaignMessages(campaignId: string, limit: number, cursor?: string): Promise<{ messages: { msgId: string; events: TraceEvent[] }[]; next?: string }> {
    const ids = this.t.campaignMsgIds.all({ campaign: campaignId, after: cursor ?? '', limit }) as string[];
    const byId = new Map(ids.map((id) => [id, [] as TraceEvent[]]));
    const keys = JSON.stringify([...new Set(ids.map(traceKey))]);
    if (ids.length > 0) for (const r of this.t.campaignMsgEvents.all({ campaign: campaignId, keys }) as TraceRow[]) if (r.msg_id !== null) byId.get(r.msg_id)?.push(toTraceEvent(r));
    const page: { messages: { msgId: string; events: TraceEvent[] }[]; next?: string } = { messages: [...byId].map(([msgId, events]) => ({ msgId, events })) };
    if (ids.length === limit) page.next = ids[ids.length - 1]!;
    return page;
  }

  async listCampaigns(limit: number): Promise<{ campaignId: string; tenant: string; lastActivity: number }[]> {
    return this.t.listCampaigns.all(limit) as { campaignId: string; tenant: string; lastActivity: number }[];
  }

  async saveClickLinks(links: readonly ClickLink[], _now: number): Promise<void> {
    if (links.length === 0) return;
    await this.commit(() => {
      for (const l of links) this.s.saveClickLink.run({ token: l.token, tenant: l.tenant, msgId: l.msgId, url: l.url, expiresAt: l.expiresAt });
    });
  }

  async findClickLink(token: string, now: number): Promise<ClickLink | undefined> {
    return (this.s.findClickLink.get(token, now) as ClickLink | undefined) ?? undefined;
  }

  async recordClick(token: string, now: number, callback: NewCallback): Promise<number> {
    return this.commit(() => {
      const clicks = (this.s.countClick.get(token, now) as number | undefined) ?? 0;
      if (clicks === 1 && this.s.dedupe.run({ key: callback.dedupeKey, expires: now + this.dedupeTtlMs, now }).changes === 1) {
        this.s.insertCallback.run(this.callbackParams(callback, now));
      }
      return clicks;
    });
  }

  async stats(): Promise<StoreStats> {
    const outbox = new Map((this.s.countOutbox.all() as { state: string; n: number }[]).map((r) => [r.state, r.n]));
    return {
      outboxPending: outbox.get('pending') ?? 0,
      outboxDead: outbox.get('dead') ?? 0,
      pendingLookups: this.s.countLookups.get() as number,
      unmatched: this.s.countUnmatched.get() as number,
      delivered: outbox.get('delivered') ?? 0,
    };
  }

  async ping(): Promise<void> {
    if (this.syncFailure) throw this.syncFailure;
    this.s.ping.get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // the last commits' sync must end before the descriptor does (its failure was reported to their writers)
    await this.durable().catch(() => undefined);
    this.db.close();
    if (this.walFd !== undefined) closeSync(this.walFd);
  }
}
