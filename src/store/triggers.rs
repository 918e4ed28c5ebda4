//! What a schema version adds in one store's own dialect: triggers and full-text indexes,
//! which SQLite and PostgreSQL spell too differently for `ddl()` to translate. [`apply`] runs
//! a version's part for the store at hand, inside the migration's transaction (`mod.rs`).
//!
//! The triggers are the same on both stores: `visits` is filled when a visitor signs in (a
//! sign-in more than 30 minutes after the last visit starts a new one; the newest 100 per
//! visitor are kept), and webhook events are queued in the transaction of the change they
//! report (so an event is never lost nor sent for a change that rolled back). Each queued
//! body is the event's JSON; the key order is the same on both stores, the spacing is not
//! (integrators verify the signature over the bytes they receive, never a re-encoding).

use super::db::{Db, Kind};
use super::Result;

/// Run version `n`'s store-specific part, if it has one.
pub(super) fn apply(db: &Db, n: i64) -> Result<()> {
    match (db.kind(), n) {
        (Kind::Sqlite, 7) => db.execute_batch(SQLITE_V7),
        (Kind::Sqlite, 8) => db.execute_batch(SQLITE_V8),
        (Kind::Postgres, 8) => {
            db.execute_batch(PG_V8)?;
            pg_trigram_index(db);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The pg_trgm index search uses on PostgreSQL (`search.rs`). The extension ships with
/// PostgreSQL (Debian's `postgresql-15` has it) and is trusted, so a database owner may
/// create it; where that is refused (a hosted server without it, a role without CREATE),
/// search still works, by scanning the business's messages. A savepoint keeps the failure
/// from aborting the migration.
fn pg_trigram_index(db: &Db) {
    let r = db.execute_batch(
        "SAVEPOINT kefu_trgm;
         CREATE EXTENSION IF NOT EXISTS pg_trgm;
         CREATE INDEX IF NOT EXISTS msg_trgm ON messages USING gin (text gin_trgm_ops)
             WHERE kind = 'text';
         RELEASE SAVEPOINT kefu_trgm;",
    );
    if let Err(e) = r {
        let _ = db.execute_batch("ROLLBACK TO SAVEPOINT kefu_trgm; RELEASE SAVEPOINT kefu_trgm;");
        crate::warn!("kefu store: no pg_trgm index, message search will scan: {e}");
    }
}

/// Version 7's SQLite-only part. `msg_fts` indexes text messages for full-text search (see
/// `search.rs` for why it keeps its own copy of the text); `visits` is filled by triggers (a
/// sign-in more than 30 minutes after the last one starts a new visit; the newest 100 per
/// visitor are kept); the webhook events are queued by triggers in the same transaction as
/// the change they report (so an event is never lost nor sent for a change that rolled back).
const SQLITE_V7: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS msg_fts USING fts5(
    text, conv_id UNINDEXED, seq UNINDEXED, tokenize = 'trigram'
);
INSERT INTO msg_fts (text, conv_id, seq)
    SELECT text, conv_id, seq FROM messages WHERE kind = 'text' AND text IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS msg_fts_add AFTER INSERT ON messages
    WHEN NEW.kind = 'text' AND NEW.text IS NOT NULL
BEGIN
    INSERT INTO msg_fts (text, conv_id, seq) VALUES (NEW.text, NEW.conv_id, NEW.seq);
END;
CREATE TRIGGER IF NOT EXISTS visit_new AFTER INSERT ON visitors
BEGIN
    INSERT INTO visits (bid, visitor_id, ts, page_url, referrer, ip)
        VALUES (NEW.bid, NEW.visitor_id, NEW.last_seen, NEW.page_url, NEW.referrer, NEW.ip);
END;
CREATE TRIGGER IF NOT EXISTS visit_again AFTER UPDATE OF last_seen ON visitors
    WHEN NOT EXISTS (SELECT 1 FROM visits WHERE bid = NEW.bid AND visitor_id = NEW.visitor_id
                     AND ts > NEW.last_seen - 1800000)
BEGIN
    INSERT INTO visits (bid, visitor_id, ts, page_url, referrer, ip)
        VALUES (NEW.bid, NEW.visitor_id, NEW.last_seen, NEW.page_url, NEW.referrer, NEW.ip);
    DELETE FROM visits WHERE bid = NEW.bid AND visitor_id = NEW.visitor_id AND id <=
        (SELECT id FROM visits WHERE bid = NEW.bid AND visitor_id = NEW.visitor_id
         ORDER BY id DESC LIMIT 1 OFFSET 100);
END;
CREATE TRIGGER IF NOT EXISTS hook_conv_created AFTER INSERT ON conversations
BEGIN
    INSERT INTO webhook_queue (hook_id, event, body, next_at)
        SELECT w.id, 'conversation.created',
               json_object('event', 'conversation.created', 'bid', NEW.bid,
                           'conv_id', NEW.id, 'visitor_id', NEW.visitor_id,
                           'ts', NEW.created_at),
               NEW.created_at
        FROM webhooks w WHERE w.bid = NEW.bid ORDER BY w.id;
END;
CREATE TRIGGER IF NOT EXISTS hook_conv_closed AFTER UPDATE OF state ON conversations
    WHEN NEW.state = 'closed' AND OLD.state != 'closed'
BEGIN
    INSERT INTO webhook_queue (hook_id, event, body, next_at)
        SELECT w.id, 'conversation.closed',
               json_object('event', 'conversation.closed', 'bid', NEW.bid,
                           'conv_id', NEW.id, 'visitor_id', NEW.visitor_id,
                           'agent_id', NEW.agent_id, 'ts', NEW.closed_at),
               NEW.closed_at
        FROM webhooks w WHERE w.bid = NEW.bid ORDER BY w.id;
END;
CREATE TRIGGER IF NOT EXISTS hook_message AFTER INSERT ON messages
    WHEN NEW.kind IN ('text', 'image')
BEGIN
    INSERT INTO webhook_queue (hook_id, event, body, next_at)
        SELECT w.id, 'message.created',
               json_object('event', 'message.created', 'bid', c.bid,
                           'conv_id', NEW.conv_id, 'seq', NEW.seq,
                           'from', NEW.sender_role, 'sender_id', NEW.sender_id,
                           'kind', NEW.kind, 'text', NEW.text, 'url', NEW.url,
                           'ts', NEW.ts),
               NEW.ts
        FROM conversations c JOIN webhooks w ON w.bid = c.bid
        WHERE c.id = NEW.conv_id ORDER BY w.id;
END;
";

/// Version 8 on SQLite: the `conversation.rated` webhook event.
const SQLITE_V8: &str = "
CREATE TRIGGER IF NOT EXISTS hook_conv_rated AFTER INSERT ON ratings
BEGIN
    INSERT INTO webhook_queue (hook_id, event, body, next_at)
        SELECT w.id, 'conversation.rated',
               json_object('event', 'conversation.rated', 'bid', NEW.bid,
                           'conv_id', NEW.conv_id, 'visitor_id', c.visitor_id,
                           'agent_id', c.agent_id, 'dept_id', c.dept_id,
                           'score', NEW.score, 'comment', NEW.comment, 'ts', NEW.ts),
               NEW.ts
        FROM conversations c JOIN webhooks w ON w.bid = c.bid
        WHERE c.id = NEW.conv_id AND c.bid = NEW.bid ORDER BY w.id;
END;
";

/// Version 8 on PostgreSQL: the visits and webhook triggers SQLite has had since version 7,
/// plus the rating event, as PL/pgSQL functions (PL/pgSQL is built into PostgreSQL).
const PG_V8: &str = "
CREATE OR REPLACE FUNCTION kefu_visit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NOT EXISTS (
        SELECT 1 FROM visits WHERE bid = NEW.bid AND visitor_id = NEW.visitor_id
            AND ts > NEW.last_seen - 1800000) THEN
        INSERT INTO visits (bid, visitor_id, ts, page_url, referrer, ip)
            VALUES (NEW.bid, NEW.visitor_id, NEW.last_seen, NEW.page_url, NEW.referrer, NEW.ip);
        DELETE FROM visits WHERE bid = NEW.bid AND visitor_id = NEW.visitor_id AND id <=
            (SELECT id FROM visits WHERE bid = NEW.bid AND visitor_id = NEW.visitor_id
             ORDER BY id DESC LIMIT 1 OFFSET 100);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER visit_new AFTER INSERT ON visitors
    FOR EACH ROW EXECUTE FUNCTION kefu_visit();
CREATE OR REPLACE TRIGGER visit_again AFTER UPDATE OF last_seen ON visitors
    FOR EACH ROW EXECUTE FUNCTION kefu_visit();

CREATE OR REPLACE FUNCTION kefu_hook_queue(p_bid TEXT, p_event TEXT, p_body json, p_at BIGINT)
    RETURNS void LANGUAGE sql AS $$
    INSERT INTO webhook_queue (hook_id, event, body, next_at)
        SELECT w.id, p_event, p_body::text, p_at FROM webhooks w WHERE w.bid = p_bid ORDER BY w.id
$$;

CREATE OR REPLACE FUNCTION kefu_hook_conv() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM kefu_hook_queue(NEW.bid, 'conversation.created',
            json_build_object('event', 'conversation.created', 'bid', NEW.bid,
                              'conv_id', NEW.id, 'visitor_id', NEW.visitor_id,
                              'ts', NEW.created_at),
            NEW.created_at);
    ELSIF NEW.state = 'closed' AND OLD.state <> 'closed' THEN
        PERFORM kefu_hook_queue(NEW.bid, 'conversation.closed',
            json_build_object('event', 'conversation.closed', 'bid', NEW.bid,
                              'conv_id', NEW.id, 'visitor_id', NEW.visitor_id,
                              'agent_id', NEW.agent_id, 'ts', NEW.closed_at),
            NEW.closed_at);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER hook_conv_created AFTER INSERT ON conversations
    FOR EACH ROW EXECUTE FUNCTION kefu_hook_conv();
CREATE OR REPLACE TRIGGER hook_conv_closed AFTER UPDATE OF state ON conversations
    FOR EACH ROW EXECUTE FUNCTION kefu_hook_conv();

CREATE OR REPLACE FUNCTION kefu_hook_message() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    b TEXT;
BEGIN
    SELECT c.bid INTO b FROM conversations c WHERE c.id = NEW.conv_id;
    PERFORM kefu_hook_queue(b, 'message.created',
        json_build_object('event', 'message.created', 'bid', b,
                          'conv_id', NEW.conv_id, 'seq', NEW.seq,
                          'from', NEW.sender_role, 'sender_id', NEW.sender_id,
                          'kind', NEW.kind, 'text', NEW.text, 'url', NEW.url,
                          'ts', NEW.ts),
        NEW.ts);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER hook_message AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.kind IN ('text', 'image')) EXECUTE FUNCTION kefu_hook_message();

CREATE OR REPLACE FUNCTION kefu_hook_rated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    c RECORD;
BEGIN
    SELECT visitor_id, agent_id, dept_id INTO c FROM conversations
        WHERE id = NEW.conv_id AND bid = NEW.bid;
    IF FOUND THEN
        PERFORM kefu_hook_queue(NEW.bid, 'conversation.rated',
            json_build_object('event', 'conversation.rated', 'bid', NEW.bid,
                              'conv_id', NEW.conv_id, 'visitor_id', c.visitor_id,
                              'agent_id', c.agent_id, 'dept_id', c.dept_id,
                              'score', NEW.score, 'comment', NEW.comment, 'ts', NEW.ts),
            NEW.ts);
    END IF;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER hook_conv_rated AFTER INSERT ON ratings
    FOR EACH ROW EXECUTE FUNCTION kefu_hook_rated();
";
