//! Storage: one diesel codebase over SQLite (embedded, the default) and PostgreSQL (production).
//!
//! The backend is chosen from the `DATABASE_URL` scheme, never by trial: a wrong PostgreSQL password must
//! surface as that error, not silently become an SQLite file. Everything backend-specific lives here.

pub mod groups;
pub mod prepared;
pub mod schema;
pub mod types;

use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::migration::MigrationSource;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel::{Connection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use types::{DbUuid, PortableUuid};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
#[cfg(feature = "postgres")]
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection to whichever backend `DATABASE_URL` names.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// PostgreSQL, for production and several server processes.
    #[cfg(feature = "postgres")]
    Postgres(diesel::PgConnection),
    /// Embedded SQLite, the default (kept last, as diesel's docs ask).
    Sqlite(SqliteConnection),
}

/// The current UTC time at microsecond precision: what both backends store, so values read back compare equal.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://PATH` or `sqlite::memory:`.
    Sqlite,
    /// `postgres://...` or `postgresql://...`.
    Postgres,
}

impl Backend {
    /// The backend named by a database URL's scheme.
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            if cfg!(feature = "postgres") {
                Ok(Backend::Postgres)
            } else {
                Err(DbError::Config(
                    "DATABASE_URL is a PostgreSQL URL but this binary was built without the `postgres` \
                     feature: rebuild with `cargo build --features postgres`"
                        .into(),
                ))
            }
        } else {
            Err(DbError::Config(
                "DATABASE_URL must start with sqlite:// or postgres:// (for example sqlite://threadcart.db)"
                    .into(),
            ))
        }
    }

    /// The name operators see in logs and `/readyz`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What can go wrong reaching or using the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL or settings are unusable.
    #[error("{0}")]
    Config(String),
    /// A connection could not be made (wrong password, server down, unwritable file ...).
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    /// No pooled connection became free in time.
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::PoolError),
    /// Migrations could not be applied.
    #[error("database migrations failed: {0}")]
    Migration(String),
    /// The blocking task running the query was cancelled.
    #[error("database task was cancelled")]
    Cancelled,
    /// The call that served a group of callers together failed (see [`groups`]), or its writers stopped.
    #[error("{0}")]
    Group(String),
}

/// Turns a `sqlite://` URL into the path SQLite expects.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// Opens one connection of the backend the URL names.
pub fn establish(url: &str) -> Result<DbConnection, DbError> {
    let mut conn = match Backend::from_url(url)? {
        Backend::Sqlite => DbConnection::Sqlite(SqliteConnection::establish(sqlite_path(url))?),
        #[cfg(feature = "postgres")]
        Backend::Postgres => DbConnection::Postgres(diesel::PgConnection::establish(url)?),
        #[cfg(not(feature = "postgres"))]
        Backend::Postgres => return Err(DbError::Config("PostgreSQL support is not built in".into())),
    };
    prepare(&mut conn)?;
    Ok(conn)
}

/// Per-connection settings, applied to every connection the pool opens: SQLite needs them on each
/// connection (they are not stored in the file), PostgreSQL needs none.
fn prepare(conn: &mut DbConnection) -> Result<(), diesel::result::Error> {
    match conn {
        DbConnection::Sqlite(c) => c.batch_execute(
            "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        ),
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(_) => Ok(()),
    }
}

impl DbConnection {
    /// The backend behind this connection.
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrations(&self) -> EmbeddedMigrations {
        match self {
            DbConnection::Sqlite(_) => SQLITE_MIGRATIONS,
            #[cfg(feature = "postgres")]
            DbConnection::Postgres(_) => POSTGRES_MIGRATIONS,
        }
    }
}

/// Applies pending migrations; returns how many ran.
pub fn run_migrations(conn: &mut DbConnection) -> Result<usize, DbError> {
    let migrations = conn.migrations();
    let applied = conn
        .run_pending_migrations(migrations)
        .map_err(|e| DbError::Migration(e.to_string()))?;
    Ok(applied.len())
}

/// True when every embedded migration has been applied.
pub fn migrations_applied(conn: &mut DbConnection) -> Result<bool, DbError> {
    let migrations = conn.migrations();
    // Reading the list cannot fail for embedded migrations; a failure still answers "not applied".
    let expected = MigrationSource::<MultiBackend>::migrations(&migrations)
        .map_err(|e| DbError::Migration(e.to_string()))?
        .len();
    let done = conn
        .applied_migrations()
        .map_err(|e| DbError::Migration(e.to_string()))?
        .len();
    Ok(done >= expected)
}

/// Runs `f` in a write transaction: `BEGIN IMMEDIATE` on SQLite (so two writers never deadlock on the
/// read-to-write lock upgrade), an ordinary transaction on PostgreSQL.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?;
        }
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(_) => return conn.transaction(f),
    }
    finish_transaction(conn, f)
}

/// Runs `f`'s reads on one snapshot of the database, so that several statements see the same moment
/// (a report reading the daily rollup, then the events not folded into it yet, must not see a fold
/// commit in between): `REPEATABLE READ READ ONLY` on PostgreSQL, a deferred transaction on SQLite
/// (whose snapshot is taken at the first read and kept until the end).
pub fn snapshot<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
) -> diesel::QueryResult<T> {
    match conn {
        DbConnection::Sqlite(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN")?,
        #[cfg(feature = "postgres")]
        DbConnection::Postgres(inner) => AnsiTransactionManager::begin_transaction_sql(
            inner,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
    }
    finish_transaction(conn, f)
}

/// Runs `f` in the transaction just begun on the inner connection, and commits it, or rolls it back
/// when `f` fails.
fn finish_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    // The multi-backend transaction manager delegates to the inner one begun above.
    type Tm = <DbConnection as Connection>::TransactionManager;
    match f(conn) {
        Ok(value) => {
            Tm::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => match Tm::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}

/// What [`write_or_nested_transaction`] got back from `write_transaction`: its own failure, or the body's.
enum Outcome<E> {
    Diesel(diesel::result::Error),
    Body(E),
}

impl<E> From<diesel::result::Error> for Outcome<E> {
    fn from(e: diesel::result::Error) -> Self {
        Outcome::Diesel(e)
    }
}

/// Runs `f` in its own write transaction, or, when the caller already opened one (the conversation
/// applies a shopper's tap inside its own), in a savepoint of it: either way all of `f` or nothing, and a
/// refusal undoes only what `f` did. SQLite refuses a second `BEGIN IMMEDIATE` before running anything,
/// which is how a caller's open transaction is recognised; PostgreSQL nests by itself.
pub fn write_or_nested_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let mut body = Some(f);
    let outcome = write_transaction(conn, |conn| match body.take() {
        Some(f) => f(conn).map_err(Outcome::Body),
        None => Err(Outcome::Diesel(diesel::result::Error::AlreadyInTransaction)),
    });
    match outcome {
        Ok(value) => Ok(value),
        Err(Outcome::Body(e)) => Err(e),
        Err(Outcome::Diesel(diesel::result::Error::AlreadyInTransaction)) => match body.take() {
            Some(f) => conn.transaction(f),
            None => Err(diesel::result::Error::AlreadyInTransaction.into()),
        },
        Err(Outcome::Diesel(e)) => Err(e.into()),
    }
}

/// Builds connections for the pool, of the backend chosen once from the URL.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: String,
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = DbError;

    fn connect(&self) -> Result<DbConnection, DbError> {
        establish(&self.url)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), DbError> {
        conn.ping().map_err(DbError::Query)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Runs `f` on a pooled connection; when it failed, the connection is pinged, and a dead one (the server
/// restarted, the network dropped it) is marked broken so that the pool discards it instead of handing it
/// out again.
fn checked<T, E>(conn: &mut DbConnection, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E> {
    let result = f(conn);
    if result.is_err() && conn.ping().is_err() {
        use diesel::connection::{Connection, TransactionManager};
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn).set_in_error();
        tracing::warn!("a database connection died; it is dropped from the pool");
    }
    result
}

/// Pool usage, for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    /// Connections open.
    pub connections: u32,
    /// Connections idle.
    pub idle: u32,
    /// The pool's maximum.
    pub max: u32,
}

/// The application's handle on the database: a pool plus the async bridge.
#[derive(Clone)]
pub struct Db {
    pool: r2d2::Pool<ConnectionManager>,
    backend: Backend,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("backend", &self.backend).finish()
    }
}

impl Db {
    /// Connects, applies pending migrations, and builds the pool.
    ///
    /// The first connection is made eagerly so a bad URL or password fails start-up with its real cause.
    pub fn connect(url: &str, max_connections: u32) -> Result<Db, DbError> {
        let backend = Backend::from_url(url)?;
        let mut first = establish(url)?;
        let applied = run_migrations(&mut first)?;
        if applied > 0 {
            tracing::info!(
                db.backend = backend.name(),
                migrations.applied = applied,
                "database migrated"
            );
        }
        drop(first);
        // SQLite allows one writer at a time; a few connections serve the readers beside it.
        let max = match backend {
            Backend::Sqlite => max_connections.clamp(1, 8),
            Backend::Postgres => max_connections.max(1),
        };
        let pool = r2d2::Pool::builder()
            .max_size(max)
            // Connections are opened on demand, never ahead in the pool's threads: a command that exits
            // while one of those threads is in the middle of libpq's TLS handshake crashes in OpenSSL's
            // exit handlers (a segmentation fault after its work was done).
            .min_idle(Some(0))
            // No `SELECT 1` before every use (a third of all round trips under load): a connection that
            // fails is checked once its work failed, and dropped from the pool if it is dead (see
            // `Db::run_blocking`); r2d2 also recycles idle and old connections.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(ConnectionManager { url: url.to_owned() })?;
        Ok(Db { pool, backend })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs blocking diesel work on the blocking thread pool, inside the caller's tracing span.
    pub async fn run<T, E>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        let joined = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut conn = pool.get().map_err(DbError::from)?;
                checked(&mut conn, f)
            })
        })
        .await;
        joined.unwrap_or_else(|_| Err(DbError::Cancelled.into()))
    }

    /// Runs one plain query function (see [`Db::run`]).
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
    ) -> Result<T, DbError> {
        self.run(move |conn| f(conn).map_err(DbError::from)).await
    }

    /// Blocking access, for the CLI and start-up code that is not async.
    pub fn run_blocking<T, E>(&self, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<DbError>,
    {
        let mut conn = self.pool.get().map_err(DbError::from)?;
        checked(&mut conn, f)
    }

    /// Blocking access for one plain query function.
    pub fn query_blocking<T>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> diesel::QueryResult<T>,
    ) -> Result<T, DbError> {
        self.run_blocking(|conn| f(conn).map_err(DbError::from))
    }

    /// Current pool usage.
    pub fn usage(&self) -> PoolUsage {
        let state = self.pool.state();
        PoolUsage {
            connections: state.connections,
            idle: state.idle_connections,
            max: self.pool.max_size(),
        }
    }
}

/// Makes a PostgreSQL statement built by hand runnable, cached by the connection under its SQL text (which
/// never changes, whatever the number of rows), so it is prepared once per connection.
#[cfg(feature = "postgres")]
#[macro_export]
macro_rules! fixed_text_statement {
    ($ty:ident) => {
        impl diesel::query_builder::QueryId for $ty<'_> {
            type QueryId = ();
            const HAS_STATIC_QUERY_ID: bool = false;
        }

        impl<Conn> diesel::RunQueryDsl<Conn> for $ty<'_> {}
    };
}

/// Runs a statement that diesel builds for each backend but not for the MultiConnection (upserts with
/// `ON CONFLICT`, which both SQLite and PostgreSQL speak alike): the same DSL, dispatched per backend.
#[macro_export]
macro_rules! per_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Sqlite($c) => $body,
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Postgres($c) => $body,
        }
    };
}

diesel::define_sql_function! {
    /// SQL's `lower`, which both backends speak (SQLite folds ASCII letters only).
    fn lower(text: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// A `LIKE` pattern matching `text` anywhere, lower-cased, with `%`, `_` and the backslash escaped
/// (use it with `.escape('\\')`).
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Where a page of a list keyed by UUIDv7 ids starts and which way it reads. Lists answer newest created
/// first unless asked oldest first; either way the cursor is the last id of the previous page, so the
/// next page is the ids beyond it in the list's direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keyset {
    /// The last id of the previous page.
    pub cursor: Option<uuid::Uuid>,
    /// Oldest first (ascending ids) instead of newest first.
    pub oldest_first: bool,
}

impl Keyset {
    /// The first page, oldest first: what the service's own readers use, where creation order is the
    /// merchant's intended order (the shop's products and rooms as the bot shows them).
    pub const OLDEST_FIRST: Keyset = Keyset {
        cursor: None,
        oldest_first: true,
    };
}

/// Orders a boxed query by the UUIDv7 column `$id` in the [`Keyset`]'s direction and starts it beyond
/// the cursor.
#[macro_export]
macro_rules! keyset {
    ($query:expr, $id:expr, $keyset:expr) => {{
        let keyset: $crate::db::Keyset = $keyset;
        let query = $query;
        match (keyset.oldest_first, keyset.cursor) {
            (true, None) => query.order($id.asc()),
            (true, Some(c)) => query.order($id.asc()).filter($id.gt($crate::db::DbUuid(c))),
            (false, None) => query.order($id.desc()),
            (false, Some(c)) => query.order($id.desc()).filter($id.lt($crate::db::DbUuid(c))),
        }
    }};
}

/// The one row `query` selects, held for the rest of the write transaction; `None` when another
/// transaction holds it. The only locking that differs between the backends: PostgreSQL's `FOR NO KEY
/// UPDATE SKIP LOCKED`, while on SQLite the write transaction (`BEGIN IMMEDIATE`) is the only writer
/// already. `NO KEY`: two holders still exclude each other, but rows referring to the held one can be
/// inserted meanwhile (their foreign key takes a key-share lock, which `FOR UPDATE` would refuse: a
/// shopper's new events, acknowledged to Meta, would wait for the shopper's turn to commit).
#[macro_export]
macro_rules! first_skip_locked {
    ($conn:expr, $query:expr) => {
        match $conn {
            #[cfg(feature = "postgres")]
            $crate::db::DbConnection::Postgres(c) => {
                $query.for_no_key_update().skip_locked().first(c).optional()
            }
            $crate::db::DbConnection::Sqlite(c) => $query.first(c).optional(),
        }
    };
}

/// True when `e` is a unique violation on `table` (PostgreSQL names the table, SQLite says it in the message).
pub fn is_unique_violation_on(e: &diesel::result::Error, table: &str) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.table_name() == Some(table) || info.message().contains(&format!("{table}."))
        }
        _ => false,
    }
}
