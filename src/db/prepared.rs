//! `UPDATE` statements the connection prepares once and reuses.
//!
//! diesel prepares and caches every `SELECT` and single-row `INSERT`, but never an `UPDATE`: its changeset
//! may leave out `None` values, so the SQL of one call site could vary. PostgreSQL then parses and plans
//! each `UPDATE` anew, which on the busiest paths (marking a send done, an event applied, a thread's
//! window) cost about as much as running it. [`update`] builds the same statement as `diesel::update`
//! from the same typed parts (columns checked against the table at compile time) and lets the
//! connection cache it under its SQL text: a call site whose changeset varies simply has one prepared
//! statement per form. Use it with plain `column.eq(value)` changesets on hot paths.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::expression::{AppearsOnTable, Expression, SelectableExpression};
use diesel::query_builder::{AsChangeset, AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::RunQueryDsl;
use diesel::query_source::Table;
use diesel::result::QueryResult;
use diesel::sql_types::BoolOrNullableBool;

/// `UPDATE table SET changes WHERE filter`, prepared once per connection.
#[derive(Debug, Clone)]
#[must_use = "a statement does nothing until it is executed"]
pub struct Update<T: Table, V, W> {
    table: PhantomData<T>,
    from_clause: T::FromClause,
    changes: V,
    filter: W,
}

/// An [`Update`] answering the changed rows' `selection` (`RETURNING`).
#[derive(Debug, Clone)]
#[must_use = "a statement does nothing until it is executed"]
pub struct UpdateReturning<U, S> {
    update: U,
    selection: S,
}

/// `UPDATE table SET changes WHERE filter`, as `diesel::update(table.filter(filter)).set(changes)`
/// builds it, but cached as a prepared statement by the connection.
pub fn update<T, C, W>(table: T, changes: C, filter: W) -> Update<T, C::Changeset, W>
where
    T: Table,
    C: AsChangeset<Target = T>,
    W: Expression + AppearsOnTable<T>,
    W::SqlType: BoolOrNullableBool,
{
    Update {
        table: PhantomData,
        from_clause: table.from_clause(),
        changes: changes.as_changeset(),
        filter,
    }
}

impl<T: Table, V, W> Update<T, V, W> {
    /// The same statement answering `selection` for each row it changed.
    pub fn returning<S>(self, selection: S) -> UpdateReturning<Self, S>
    where
        S: SelectableExpression<T>,
    {
        UpdateReturning {
            update: self,
            selection,
        }
    }
}

impl<T, V, W, DB> QueryFragment<DB> for Update<T, V, W>
where
    DB: Backend,
    T: Table,
    T::FromClause: QueryFragment<DB>,
    V: QueryFragment<DB>,
    W: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        // What diesel's `UpdateStatement` writes, without declaring itself unsafe to cache.
        out.push_sql("UPDATE ");
        self.from_clause.walk_ast(out.reborrow())?;
        out.push_sql(" SET ");
        self.changes.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<T: Table, V, W> QueryId for Update<T, V, W> {
    type QueryId = ();
    // Cached under its SQL text (and bind types), never under its Rust type: two forms of one call
    // site must not share a statement.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T: Table, V, W, Conn> RunQueryDsl<Conn> for Update<T, V, W> {}

impl<U, S, DB> QueryFragment<DB> for UpdateReturning<U, S>
where
    DB: Backend,
    U: QueryFragment<DB>,
    S: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.update.walk_ast(out.reborrow())?;
        out.push_sql(" RETURNING ");
        self.selection.walk_ast(out.reborrow())?;
        Ok(())
    }
}

impl<U, S: Expression> Query for UpdateReturning<U, S> {
    type SqlType = S::SqlType;
}

impl<U, S> QueryId for UpdateReturning<U, S> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<U, S, Conn> RunQueryDsl<Conn> for UpdateReturning<U, S> {}
