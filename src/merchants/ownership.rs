//! Proof that a merchant may connect a channel account: Meta must say the token it gives is that
//! account's, or anyone could connect an unclaimed Page id with any token and read its shoppers'
//! messages. A Messenger Page is checked with `GET /me` and the Page access token (it answers its
//! Page). An Instagram professional account and a WhatsApp number will get their own check beside
//! [`confirm_page`], answering the same [`OwnershipError`].

use crate::channels::meta::graph::{GraphClient, GraphError, TokenOwner};

/// Why Meta did not confirm a token as the account's.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipError {
    /// Meta says the token speaks for another account.
    #[error("Meta says this access token is not {account}'s")]
    Mismatch {
        /// The account claimed (`Page 1234`).
        account: String,
    },
    /// Meta refused the token (expired, revoked, not a token, missing permission).
    #[error("Meta refused the access token: {0}")]
    TokenRefused(String),
    /// Meta answered with a server error: the check can be tried again.
    #[error("Meta's Graph API failed to answer ({0})")]
    MetaError(GraphError),
    /// Meta could not be reached: the check can be tried again.
    #[error("Meta's Graph API could not be reached ({0})")]
    Unreachable(GraphError),
}

/// Asks Meta who `token` speaks for and accepts it only when that is Page `page_id`.
#[tracing::instrument(skip_all, fields(page.id = %page_id))]
pub async fn confirm_page(
    graph: &GraphClient,
    page_id: &str,
    token: &str,
) -> Result<TokenOwner, OwnershipError> {
    let owner = graph.token_owner(token).await.map_err(|e| match e {
        GraphError::Transport(_) => OwnershipError::Unreachable(e),
        GraphError::Api { status, .. } if status >= 500 => OwnershipError::MetaError(e),
        GraphError::Api { code, message, .. } => {
            OwnershipError::TokenRefused(format!("{message} (code {code})"))
        }
    })?;
    if owner.id != page_id {
        tracing::warn!(token.owner = %owner.id, "a Page token of another Page was refused");
        return Err(OwnershipError::Mismatch {
            account: format!("Page {page_id}"),
        });
    }
    Ok(owner)
}
