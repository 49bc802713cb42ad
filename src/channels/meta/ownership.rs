//! Proof that a merchant may connect a channel account: Meta must say the token it gives is that
//! account's, or anyone could connect an unclaimed Page id with any token and read its shoppers'
//! messages. A Messenger Page is checked with `GET /me` and the Page access token (it answers its
//! Page); an Instagram professional account with `GET /{page-id}?fields=instagram_business_account` and
//! the same token (it answers the account linked to the Page); a WhatsApp number with `GET
//! /{waba-id}/phone_numbers` and the number's token (the number must be among them).

use super::graph::{GraphClient, GraphError, TokenOwner, WhatsappNumber};
use crate::kernel::PageId;

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

fn refused(e: GraphError) -> OwnershipError {
    match e {
        GraphError::Transport(_) => OwnershipError::Unreachable(e),
        GraphError::Api { status, .. } if status >= 500 => OwnershipError::MetaError(e),
        GraphError::Api { code, message, .. } => {
            OwnershipError::TokenRefused(format!("{message} (code {code})"))
        }
    }
}

/// Asks Meta which Instagram professional account is linked to Page `page_id` and accepts
/// `instagram_account_id` only when it is that one.
#[tracing::instrument(skip_all, fields(page.id = %page_id))]
pub async fn confirm_instagram(
    graph: &GraphClient,
    page_id: &PageId,
    token: &str,
    instagram_account_id: &str,
) -> Result<(), OwnershipError> {
    let linked = graph
        .instagram_account_of(page_id, token)
        .await
        .map_err(refused)?;
    if linked.as_deref() != Some(instagram_account_id) {
        tracing::warn!(linked = ?linked, "an Instagram account not linked to the Page was refused");
        return Err(OwnershipError::Mismatch {
            account: format!("Page {page_id}'s Instagram account {instagram_account_id}"),
        });
    }
    Ok(())
}

/// Asks Meta for the WhatsApp Business Account's numbers that `token` can see (every page) and
/// accepts `phone_number_id` only when it is among them; answers that number as Meta describes it.
#[tracing::instrument(skip_all, fields(waba.id = %waba_id, phone_number.id = %phone_number_id))]
pub async fn confirm_whatsapp(
    graph: &GraphClient,
    waba_id: &str,
    phone_number_id: &str,
    token: &str,
) -> Result<WhatsappNumber, OwnershipError> {
    graph
        .whatsapp_number(waba_id, phone_number_id, token)
        .await
        .map_err(refused)?
        .ok_or_else(|| {
            tracing::warn!("a WhatsApp number not on the account was refused");
            OwnershipError::Mismatch {
                account: format!("WhatsApp Business Account {waba_id}'s number {phone_number_id}"),
            }
        })
}

/// Asks Meta who `token` speaks for and accepts it only when that is Page `page_id`.
#[tracing::instrument(skip_all, fields(page.id = %page_id))]
pub async fn confirm_page(
    graph: &GraphClient,
    page_id: &PageId,
    token: &str,
) -> Result<TokenOwner, OwnershipError> {
    let owner = graph.token_owner(token).await.map_err(refused)?;
    if owner.id != page_id.as_str() {
        tracing::warn!(token.owner = %owner.id, "a Page token of another Page was refused");
        return Err(OwnershipError::Mismatch {
            account: format!("Page {page_id}"),
        });
    }
    Ok(owner)
}
