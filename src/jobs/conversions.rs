//! The Conversions API worker: posts queued events to the Page's dataset, one request per event (Meta
//! fails a whole request when one event in it is too old), retries 5xx and throttling with backoff,
//! and skips events older than Meta accepts.

use std::sync::Arc;

use tokio::sync::watch;

use super::{WorkerContext, backoff, idle};
use crate::attribution::conversions::{self, ConversionEvent, ConversionStatus, MAX_AGE};
use crate::channels::meta::graph::ErrorClass;
use crate::db::{DbError, now};

/// Events still failing after this many tries are marked failed.
const MAX_ATTEMPTS: i32 = 8;
/// How long a claimed event is ours.
const LEASE: chrono::Duration = chrono::Duration::seconds(60);

pub(super) async fn conversions_loop(ctx: Arc<WorkerContext>, mut stopped: watch::Receiver<bool>) {
    loop {
        match post_some(&ctx).await {
            Ok(0) => {
                if !idle(&ctx.wakers.conversions, &mut stopped).await {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "Conversions API worker failed");
                if !idle(&ctx.wakers.conversions, &mut stopped).await {
                    return;
                }
            }
        }
        if *stopped.borrow() {
            return;
        }
    }
}

async fn post_some(ctx: &WorkerContext) -> Result<usize, DbError> {
    let due = ctx
        .db
        .query(|conn| conversions::claim(conn, now(), LEASE, 32))
        .await?;
    let n = due.len();
    for event in due {
        post(ctx, event).await?;
    }
    Ok(n)
}

async fn post(ctx: &WorkerContext, e: ConversionEvent) -> Result<(), DbError> {
    let (id, attempts) = (e.id, e.attempts);
    if now() - e.event_time > MAX_AGE {
        tracing::info!(conversion.id = %id.0, "Conversions API event older than 7 days: skipped");
        return ctx
            .db
            .query(move |conn| {
                conversions::finish(conn, id, ConversionStatus::Skipped, Some("older than 7 days"))
            })
            .await;
    }
    let (page_id, secrets) = (e.page_id.clone(), ctx.secrets.clone());
    let (dataset, body) = ctx
        .db
        .query(move |conn| {
            Ok((
                conversions::dataset_of(conn, &secrets, &page_id)?,
                conversions::payload(&e)?,
            ))
        })
        .await?;
    let Some((dataset_id, token)) = dataset else {
        return ctx
            .db
            .query(move |conn| {
                conversions::finish(
                    conn,
                    id,
                    ConversionStatus::Failed,
                    Some("the Page has no dataset"),
                )
            })
            .await;
    };
    match ctx.graph.post_events(&dataset_id, &token, &body).await {
        Ok(()) => {
            tracing::info!(conversion.id = %id.0, dataset.id = %dataset_id, "Conversions API event sent");
            ctx.db
                .query(move |conn| conversions::finish(conn, id, ConversionStatus::Sent, None))
                .await
        }
        Err(err) => {
            let class = err.class();
            let error = err.to_string();
            tracing::warn!(conversion.id = %id.0, ?class, error = %error, "Conversions API post failed");
            if class == ErrorClass::Retry && attempts + 1 < MAX_ATTEMPTS {
                let next = now() + backoff(ctx.config.retry_base, attempts);
                ctx.db
                    .query(move |conn| conversions::retry(conn, id, &error, next))
                    .await
            } else {
                ctx.db
                    .query(move |conn| conversions::finish(conn, id, ConversionStatus::Failed, Some(&error)))
                    .await
            }
        }
    }
}
