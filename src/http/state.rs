//! What every handler can reach: the application's state, built once by [`crate::startup`].

use std::sync::Arc;

use crate::auth::TokenIssuer;
use crate::channels::meta::graph::GraphClient;
use crate::config::Config;
use crate::db::Db;
use crate::jobs::Wakers;
use crate::metrics::Metrics;
use crate::secrets::Secrets;

/// What every handler can reach.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The configuration.
    pub config: Arc<Config>,
    /// Access tokens.
    pub tokens: TokenIssuer,
    /// Request metrics.
    pub metrics: Metrics,
    /// Wakes the workers when work is queued.
    pub wakers: Arc<Wakers>,
    /// The Graph API (Messenger profile on Page connection).
    pub graph: GraphClient,
    /// Seals and opens the tokens stored in the database.
    pub secrets: Secrets,
    /// Stripe, when `STRIPE_SECRET_KEY` is set (refunds).
    pub stripe: Option<crate::checkout::stripe::StripeClient>,
    /// Stores Meta's deliveries in groups, one commit per group.
    pub ingest: crate::conversations::ingest::Ingest,
}
